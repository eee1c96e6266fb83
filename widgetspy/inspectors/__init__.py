"""Inspectors: rules that check the widget protocol's invariants, sans-IO.

    from widgetspy.inspectors import Checker
    checker = Checker(select=["WS3", "WS4"], ignore=["WS409"])
    for rec in records:              # live, from a file, or inside replay
        for f in checker.feed(rec):  # Finding(rule_id, severity, seq, model_id, message, excerpt, ...)
            print(f.one_line())
    checker.finish()                 # end-of-session checks

For a session recorded with both taps pass the header's taps,
`Checker(..., taps=header.taps)`: the WS6xx rules then compare the kernel's and
the browser's copies while the others read the kernel's (ZMQ) copy.

Rule ids are stable: WS1xx wire, WS2xx comm lifecycle, WS3xx widget protocol,
WS4xx bug patterns, WS5xx state types, WS6xx both taps (see docs/rules.md).
"""

from .base import Finding, Rule, Severity, excerpt_of
from .checker import Checker, all_rules, check_records, select_rules, worst
from .context import CommInfo, Context, Request

__all__ = [
    "Checker",
    "CommInfo",
    "Context",
    "Finding",
    "Request",
    "Rule",
    "Severity",
    "all_rules",
    "check_records",
    "excerpt_of",
    "select_rules",
    "worst",
]
