"""Findings as JSON, SARIF 2.1.0 and JUnit XML documents (strings, no I/O).
The rich text report lives in the CLI (`widgetspy check`)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable, Mapping
from xml.sax.saxutils import escape, quoteattr

from .. import __version__
from .base import Finding, Rule, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    c = Counter(f.severity.label for f in findings)
    return {s.label: c.get(s.label, 0) for s in sorted(Severity, reverse=True)}


def summary_line(findings: list[Finding], path: str, rules: int, messages: int) -> str:
    c = counts(findings)
    return (f"{path}: {len(findings)} finding(s): {c['error']} error(s), {c['warning']} warning(s), "
            f"{c['info']} info · {rules} rule(s) over {messages} message(s)")


def to_json(findings: list[Finding], path: str, rules: list[type[Rule]], messages: int) -> str:
    doc = {
        "file": path,
        "widgetspy_version": __version__,
        "rules": [r.id for r in rules],
        "messages": messages,
        "counts": counts(findings),
        "findings": [f.to_json() for f in findings],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def to_sarif(findings: list[Finding], path: str, rules: list[type[Rule]],
             lines: Mapping[int, int] | None = None) -> str:
    """SARIF 2.1.0 with one run; each result points at the session file's line
    holding the offending record (`lines`: seq -> 1-based line)."""
    index = {r.id: i for i, r in enumerate(rules)}
    driver_rules = [{
        "id": r.id,
        "name": _camel(r.name),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.description},
        "help": {"text": f"{r.description}\n\nSource: {r.source}",
                 "markdown": f"{r.description}\n\n*Source:* {r.source}"},
        "defaultConfiguration": {"level": SARIF_LEVEL[r.severity]},
        "properties": {"tags": [r.category], "source": r.source},
    } for r in rules]
    results = []
    for f in findings:
        line = (lines or {}).get(f.seq)
        region: dict[str, Any] = {"startLine": line} if line else {}
        location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": path}}}
        if region:
            location["physicalLocation"]["region"] = region
        location["logicalLocations"] = [{"name": f"seq {f.seq}", "kind": "member"}]
        text = f.message + (f" [{f.model_label}]" if f.model_id else "")
        result: dict[str, Any] = {
            "ruleId": f.rule_id,
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": text},
            "locations": [location],
            "partialFingerprints": {"widgetspy/v1": f"{f.rule_id}:{f.model_id or ''}:{f.message}"},
            "properties": {"seq": f.seq, "t": f.t, "model_id": f.model_id, "model_name": f.model_name,
                           "excerpt": f.excerpt},
        }
        if f.rule_id in index:
            result["ruleIndex"] = index[f.rule_id]
        results.append(result)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "widgetspy", "version": __version__, "rules": driver_rules}},
            "artifacts": [{"location": {"uri": path}}],
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def to_junit(findings: list[Finding], path: str, rules: list[type[Rule]], fail_on: Severity | None) -> str:
    """JUnit XML: one test case per rule; a rule with findings at or above
    `fail_on` fails (None: never), lower ones go to system-out."""
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule_id, []).append(f)
    cases = []
    failures = 0
    for r in rules:
        found = by_rule.get(r.id, [])
        failing = [f for f in found if fail_on is not None and f.severity >= fail_on]
        name = quoteattr(f"{r.id} {r.name}")
        classname = quoteattr(f"widgetspy.check.{r.category.replace(' ', '_')}")
        body = ""
        if failing:
            failures += 1
            text = "\n".join(f"seq {f.seq}: {f.message}\n  {f.excerpt}" for f in failing)
            body += (f'<failure message={quoteattr(f"{len(failing)} finding(s): {failing[0].message}")} '
                     f'type={quoteattr(r.severity.label)}>{escape(text)}</failure>')
        rest = [f for f in found if f not in failing]
        if rest:
            body += "<system-out>" + escape("\n".join(f.one_line() for f in rest)) + "</system-out>"
        cases.append(f"    <testcase name={name} classname={classname} file={quoteattr(path)}>{body}</testcase>")
    head = (f'<testsuite name={quoteattr("widgetspy check " + path)} tests="{len(rules)}" failures="{failures}" '
            f'errors="0" skipped="0">')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n  ' + head + "\n" + "\n".join(cases)
            + "\n  </testsuite>\n</testsuites>\n")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
