#!/usr/bin/env python
"""Summary corpus figures: how many rules of the test corpus Gavel phrases in words, and how many
decision rules get a triggering and a non-triggering worked example that the real OPA confirms.

Summarises every policy in tests/policies/summaries/corpus/ and console/demo/policies/ (a policy's
test data, when it reads `data`, is the `<name>.data.json` beside it), in Gavel's sandbox, and
writes the figures and the remaining gaps to bench/results/summary_corpus.md.

    .venv/bin/python bench/summary_corpus.py
"""
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DEBUG", "1")

import stack  # noqa: E402

os.environ.setdefault("OPA_BINARY", str(stack.opa_binary()))

import django  # noqa: E402

django.setup()

from policies.summaries.figures import figures, summarize_files  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "summary_corpus.md"
PATHS = sorted((ROOT / "tests/policies/summaries/corpus").glob("*.rego")) + sorted(
    p for p in (ROOT / "console/demo/policies").glob("*.rego") if not p.name.endswith("_test.rego"))


def main() -> None:
    started = time.monotonic()
    summaries = summarize_files(PATHS)
    seconds = time.monotonic() - started
    f = figures(summaries)
    opa = stack.opa_binary()
    lines = [
        "# Summary corpus", "",
        "Command: `.venv/bin/python bench/summary_corpus.py`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {opa.name}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
        "Every policy of `tests/policies/summaries/corpus/` and the demo policies, summarised with worked examples "
        "evaluated by the real OPA in Gavel's sandbox. A rule is *phrased* when its summary has no Rego left in it; "
        "a decision rule (deny, allow, require approval) *has examples* when OPA confirmed a request that triggers "
        "it and one that does not.", "",
        "| policies | rules | phrased | decision rules | with examples | examples | agreeing with OPA | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {f['policies']} | {f['rules']} | {f['phrased']} | {f['decision_rules']} | {f['with_examples']} | "
        f"{f['examples']} | {f['agreeing']} | {seconds:.1f} |", "",
    ]
    if f["gaps"]:
        lines += ["## Gaps", "", "| policy | rule | what | why |", "| --- | --- | --- | --- |"]
        lines += [f"| {g['policy']} | {g['rule']} | {g['what']} | {g['why'].replace('|', '/')} |" for g in f["gaps"]]
    else:
        lines += ["No gaps: every rule phrased, every decision rule with OPA-confirmed examples."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
