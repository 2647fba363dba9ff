# `make run` and `make test` do all set-up themselves: virtualenv, OPA binary, Postgres,
# Redis. Services are started by scripts/stack.py and stopped when the command ends.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run cluster test bench deps opa editor lock clean

run: deps opa editor
	$(VENV)/bin/python scripts/run_console.py

# Gavel as several machines run it (scripts/cluster.py): two web processes behind haproxy, two
# workers, one beat, Redis, a Postgres primary and its streaming replica. Needs haproxy.
cluster: deps editor
	$(VENV)/bin/python scripts/cluster.py

# The whole suite runs in TEST_SHARDS processes side by side (scripts/test_shards.py), each
# with its own services; PYTEST_ARGS="tests/audit -x" runs just those, in one process.
# A short publish backoff makes the retry tests take seconds, not minutes.
# test_shards.py finds or builds OPA itself, beside migrating the test schema once for every shard.
TEST_SHARDS ?= 3
test: deps editor
ifeq ($(strip $(PYTEST_ARGS)),)
	GAVEL_PUBLISH_RETRY_BACKOFF=1 $(VENV)/bin/python scripts/test_shards.py --shards $(TEST_SHARDS)
else
	@$(VENV)/bin/python scripts/stack.py opa-binary >/dev/null
	GAVEL_PUBLISH_RETRY_BACKOFF=1 $(VENV)/bin/python scripts/stack.py exec --profile test -- $(VENV)/bin/pytest $(PYTEST_ARGS)
endif

# Every benchmark, one after another, in a stack of their own (bench/run_all.py); each writes
# bench/results/<name>.md. BENCH_ARGS="--only entrypoint_latency replay_throughput" runs some.
bench: deps opa
	$(VENV)/bin/python scripts/stack.py exec --profile bench -- $(VENV)/bin/python bench/run_all.py $(BENCH_ARGS)

deps: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The Rego editor (CodeMirror 6, pinned in frontend/package-lock.json) bundled by esbuild into
# static/gavel/editor.js. The bundle is committed too; this step rebuilds it byte for byte.
NPM ?= npm
NODE_STAMP := frontend/node_modules/.installed

editor: $(NODE_STAMP)
	cd frontend && $(NPM) run --silent build

$(NODE_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && $(NPM) ci --no-audit --no-fund
	touch $(NODE_STAMP)

opa:
	@$(VENV)/bin/python scripts/stack.py opa-binary

# Re-pin every dependency after changing pyproject.toml.
lock:
	$(VENV)/bin/pip install --quiet -e ".[test]"
	$(VENV)/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .gavel frontend/node_modules
