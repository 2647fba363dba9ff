# `make run` and `make test` do all set-up themselves: virtualenv, OPA binary, Postgres,
# Redis. Services are started by scripts/stack.py and stopped when the command ends.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test deps opa lock clean

run: deps opa
	$(VENV)/bin/python scripts/stack.py run

test: deps opa
	# Short publish backoff so the retry tests take seconds, not minutes.
	GAVEL_PUBLISH_RETRY_BACKOFF=1 $(VENV)/bin/python scripts/stack.py exec --profile test -- $(VENV)/bin/pytest $(PYTEST_ARGS)

deps: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

opa:
	@$(VENV)/bin/python scripts/stack.py opa-binary

# Re-pin every dependency after changing pyproject.toml.
lock:
	$(VENV)/bin/pip install --quiet -e ".[test]"
	$(VENV)/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .gavel
