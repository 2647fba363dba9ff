"""What changed between two versions, in words:
"The rule “Token budget” now denies when ... 10,000 (was 50,000)"."""
from __future__ import annotations

import re

from policies.summaries.summary import all_rules

LEADS = {"deny": "denies", "allow": "allows", "approval": "requires approval", "helper": "holds", "value": "is"}


def _key(record: dict) -> tuple:
    """How a rule is recognised across versions: its title, else its message, else its place."""
    if record.get("title"):
        return (record["effect"], record["name"], "title", record["title"])
    template = (record.get("message") or {}).get("template")
    if template:
        return (record["effect"], record["name"], "message", template)
    return (record["effect"], record["name"], "shape", _shape(record["sentence"]))


def _shape(text: str) -> str:
    return re.sub(r"“[^”]*”|-?\d[\d,]*(\.\d+)?", "…", text)


def _values(parts: list) -> list:
    return [p["s"] for p in parts if p.get("t") == "value"]


def _condition_change(old: dict, new: dict) -> str | None:
    """The new condition with each changed value followed by "(was old)", when only values changed."""
    if old["text"] == new["text"]:
        return None
    if old["fallback"] or new["fallback"] or _shape(old["text"]) != _shape(new["text"]):
        return new["text"] + f" (was: {old['text']})"
    old_values = iter(_values(old["parts"]))
    words = []
    for part in new["parts"]:
        if part.get("t") == "value":
            before = next(old_values, None)
            words.append(part["s"] if before in (None, part["s"]) else f"{part['s']} (was {before})")
        else:
            words.append(part["s"])
    return "".join(words)


def _title(record: dict) -> str:
    """How the rule is named to a reader: its title, else its name in words ("the rule “Token budget”")."""
    return f"the rule “{record.get('title') or record['label']}”"


def _describe(record: dict) -> str:
    lead = LEADS.get(record["effect"], "holds")
    name = record.get("title") or record["label"]
    return f"{lead} when {record['sentence'].split(' when ', 1)[-1]}" if " when " in record["sentence"] \
        else f"{name}: {record['sentence']}"


def _rule_change(old: dict, new: dict) -> str | None:
    if old["sentence"] == new["sentence"] and (old.get("message") or {}).get("text") == (
            new.get("message") or {}).get("text"):
        return None
    notes = []
    olds, news = old["conditions"], new["conditions"]
    if len(olds) == len(news):
        changed = [c for c in (_condition_change(a, b) for a, b in zip(olds, news)) if c]
        if changed:
            notes.append(f"{LEADS.get(new['effect'], 'holds')} when " + " and ".join(changed))
    else:
        before = old["sentence"]
        notes.append(_describe(new) + (f" (was: when {before.split(' when ', 1)[1]})" if " when " in before
                                       else f" (was: {before})"))
    old_msg, new_msg = (old.get("message") or {}).get("text"), (new.get("message") or {}).get("text")
    same_template = (old.get("message") or {}).get("template") == (new.get("message") or {}).get("template")
    if old_msg != new_msg and not (same_template and (old.get("message") or {}).get("template")):
        notes.append(f"its message is now “{new_msg}” (was “{old_msg}”)")
    return "; ".join(notes) or None


def _list_changes(old: list, new: list) -> list[str]:
    before, after = {c["name"]: c for c in old}, {c["name"]: c for c in new}
    notes = []
    for name in after.keys() - before.keys():
        notes.append(f"New list {after[name]['label']}: {after[name]['text']}.")
    for name in before.keys() - after.keys():
        notes.append(f"Removed list {before[name]['label']} (was {before[name]['text']}).")
    for name in sorted(after.keys() & before.keys()):
        a, b = before[name], after[name]
        if a["text"] == b["text"]:
            continue
        if a["kind"] == b["kind"] == "list":
            added = [v for v in b["values"] if v not in a["values"]]
            removed = [v for v in a["values"] if v not in b["values"]]
            bits = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
            notes.append(f"{b['label'].capitalize()}: {'; '.join(bits)}.")
        else:
            notes.append(f"{b['label'].capitalize()} is now {b['text']} (was {a['text']}).")
    return notes


def diff(old: dict, new: dict) -> dict:
    """Changes from summary `old` to summary `new` as sentences, grouped by what they touch.

    {"rules": [{"kind": "added"|"removed"|"changed", "effect", "anchor", "text"}],
     "defaults": [str], "lists": [str], "unchanged": int}
    """
    before = {}
    for record in all_rules(old):
        before.setdefault(_key(record), record)
    after = {}
    for record in all_rules(new):
        after.setdefault(_key(record), record)
    rules, unchanged = [], 0
    for key, record in after.items():
        if key not in before:
            rules.append({"kind": "added", "effect": record["effect"], "anchor": record["anchor"],
                          "text": f"Added {_title(record)}: {_describe(record)}."})
            continue
        change = _rule_change(before[key], record)
        if change:
            title = _title(record)
            rules.append({"kind": "changed", "effect": record["effect"], "anchor": record["anchor"],
                          "text": f"{title[0].upper()}{title[1:]} now {change[0].lower()}{change[1:]}."})
        else:
            unchanged += 1
    for key, record in before.items():
        if key not in after:
            rules.append({"kind": "removed", "effect": record["effect"], "anchor": None,
                          "text": f"Removed {_title(record)}: no longer {_describe(record)}."})
    old_defaults = {d["name"]: d["text"] for d in old["defaults"]}
    defaults = [f"{text} (was: {old_defaults.get(name, 'no default')})"
                for name, text in ((d["name"], d["text"]) for d in new["defaults"]) if old_defaults.get(name) != text]
    defaults += [f"No longer: {text}" for name, text in old_defaults.items()
                 if name not in {d["name"] for d in new["defaults"]}]
    order = {"changed": 0, "added": 1, "removed": 2}
    rules.sort(key=lambda r: order[r["kind"]])
    return {"rules": rules, "defaults": defaults, "lists": _list_changes(old["constants"], new["constants"]),
            "unchanged": unchanged}
