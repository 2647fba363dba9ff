"""Line diffs between two versions of a policy (difflib), for the page and the API."""
from __future__ import annotations

import difflib

CONTEXT_LINES = 3


def line_diff(old: str, new: str) -> list[dict]:
    """Hunks of a unified diff: [{"header", "lines": [{"op": " "|"-"|"+", "old", "new", "text"}]}]."""
    a, b = old.splitlines(), new.splitlines()
    hunks = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(CONTEXT_LINES):
        lines = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [{"op": " ", "old": i + 1, "new": j + 1, "text": a[i]} for i, j in zip(range(i1, i2), range(j1, j2))]
                continue
            lines += [{"op": "-", "old": i + 1, "new": None, "text": a[i]} for i in range(i1, i2)]
            lines += [{"op": "+", "old": None, "new": j + 1, "text": b[j]} for j in range(j1, j2)]
        first, last = group[0], group[-1]
        header = f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@"
        hunks.append({"header": header, "lines": lines})
    return hunks


def unified(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name, n=CONTEXT_LINES))


def version_diff(version, other) -> dict:
    """`version` against `other` (either may be the older): what changed in source and tests."""
    name = version.policy.name
    result = {"from": other.number, "to": version.number,
              "source": line_diff(other.source, version.source),
              "unified": unified(other.source, version.source, f"{name}.rego@v{other.number}",
                                 f"{name}.rego@v{version.number}")}
    if other.tests or version.tests:
        result["tests"] = line_diff(other.tests, version.tests)
    return result
