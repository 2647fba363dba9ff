"""How `gavel check` prints its results: conftest's lines (default), a table, JSON, JUnit XML, TAP."""
from __future__ import annotations

import json
from xml.etree import ElementTree

FORMATS = ("stdout", "table", "json", "junit", "tap")


def waived_line(waived: dict) -> str:
    """A denial an approved, unexpired exception of the environment let through, and which."""
    ids = ", ".join(f"#{i}" for i in waived["exceptions"])
    return f"{waived['message']} (waived by exception {ids})"


def _lines(result: dict) -> list[tuple[str, str]]:
    """(FAIL|WARN|EXCP|PASS, message) for one document and policy."""
    lines = ([("FAIL", m) for m in result["failures"]] + [("WARN", m) for m in result["warnings"]]
             + [("EXCP", waived_line(w)) for w in result.get("waived") or []])
    return lines or [("PASS", "")]


def _where(result: dict) -> str:
    return result["file"] + (f"[{result['document']}]" if result.get("multi") else "")


def _mark_multi(results: list[dict]) -> None:
    files: dict[str, int] = {}
    for result in results:
        files[result["file"]] = max(files.get(result["file"], 0), result["document"])
    first = {}
    for result in results:
        first.setdefault(result["file"], result["document"])
    for result in results:
        result["multi"] = files[result["file"]] != first[result["file"]]


def summary_line(summary: dict) -> str:
    def plural(n, word):
        return f"{n} {word}{'' if n == 1 else 's'}"
    return (f"{plural(summary['tests'], 'test')}, {summary['passed']} passed, {plural(summary['warnings'], 'warning')}, "
            f"{plural(summary['failures'], 'failure')}, {plural(summary['exceptions'], 'exception')}")


def stdout(report: dict) -> str:
    out = []
    for result in report["results"]:
        for kind, message in _lines(result):
            if kind == "PASS":
                continue
            out.append(f"{kind} - {_where(result)} - {result['namespace']} - {message}")
    out += ["", summary_line(report["summary"])]
    return "\n".join(out)


def table(report: dict) -> str:
    rows = [("RESULT", "FILE", "POLICY", "MESSAGE")]
    for result in report["results"]:
        for kind, message in _lines(result):
            rows.append((kind.lower(), _where(result), f"{result['policy']} v{result['version']}", message))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    return "\n".join([*map(str.rstrip, text), "", summary_line(report["summary"])])


def as_json(report: dict) -> str:
    return json.dumps({k: v for k, v in report.items()}, indent=2, ensure_ascii=False)


def junit(report: dict) -> str:
    summary = report["summary"]
    suite = ElementTree.Element("testsuite", name=f"gavel check ({report['environment']})",
                                tests=str(summary["tests"]), failures=str(summary["failures"]), errors="0",
                                skipped="0")
    for result in report["results"]:
        case = ElementTree.SubElement(suite, "testcase", classname=result["namespace"],
                                      name=f"{_where(result)} - {result['policy']} v{result['version']}")
        for message in result["failures"]:
            ElementTree.SubElement(case, "failure", message=message, type="deny").text = message
        notes = [f"WARN - {w}" for w in result["warnings"]]
        notes += [f"EXCP - {waived_line(w)}" for w in result.get("waived") or []]
        if notes:
            ElementTree.SubElement(case, "system-out").text = "\n".join(notes)
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)


def tap(report: dict) -> str:
    out = [f"1..{len(report['results'])}"]
    for number, result in enumerate(report["results"], 1):
        name = f"{_where(result)} - {result['namespace']}"
        ok = "not ok" if result["failures"] else "ok"
        out.append(f"{ok} {number} - {name}" + (f" - {'; '.join(result['failures'])}" if result["failures"] else ""))
        out += [f"# warn: {w}" for w in result["warnings"]]
        out += [f"# exception: {waived_line(w)}" for w in result.get("waived") or []]
    return "\n".join(out)


def render(report: dict, fmt: str) -> str:
    _mark_multi(report["results"])
    return {"stdout": stdout, "table": table, "json": as_json, "junit": junit, "tap": tap}[fmt](report)
