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
import subprocess
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
# The same script at commit 7ff8be8, the corpus just written and the finder as it was before issue 19's
# work: 38 policies (35 in the corpus, 3 demo), `require_approval contains` rules still counted as helpers.
BASELINE = "| before (7ff8be8) | 38 | 124 | 101 | 90 | 60 | 121 | 121 | 8.2 (one opa eval per policy) |"
PATHS = sorted((ROOT / "tests/policies/summaries/corpus").glob("*.rego")) + sorted(
    p for p in (ROOT / "console/demo/policies").glob("*.rego") if not p.name.endswith("_test.rego"))


def main() -> None:
    started = time.monotonic()
    summaries = summarize_files(PATHS)
    seconds = time.monotonic() - started
    f = figures(summaries)
    opa = stack.opa_binary()
    version = subprocess.run([str(opa), "version"], capture_output=True, text=True, env={}).stdout.split("\n")[0]
    lines = [
        "# Summary corpus", "",
        "Command: `.venv/bin/python bench/summary_corpus.py`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, OPA {version.removeprefix('Version: ')}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
        "Every policy of `tests/policies/summaries/corpus/` and the demo policies, summarised with worked examples "
        "evaluated by the real OPA in Gavel's sandbox. A rule is *phrased* when its summary has no Rego left in it; "
        "a decision rule (deny, allow, require approval) *has examples* when OPA confirmed a request that triggers "
        "it and one that does not.", "",
        "| run | policies | rules | phrased | decision rules | with examples | examples | agreeing with OPA "
        "| seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        BASELINE,
        f"| now | {f['policies']} | {f['rules']} | {f['phrased']} | {f['decision_rules']} | {f['with_examples']} | "
        f"{f['examples']} | {f['agreeing']} | {seconds:.1f} |", "",
        "Seconds are wall-clock for summarising every policy with its examples (parsing, OPA's partial "
        "evaluation, and one `opa eval` for all the worked examples), on a machine shared with other work.", "",
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
