"""Checking a session with both taps: one-tap rules read the ZMQ copy of each
message, the both-taps rules (WS6xx) read every record.

    checker = checker_for(Checker(...), header.taps)   # a Checker unchanged for one tap
    for rec in records: checker.feed(rec)
    checker.finish(); checker.findings
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..session.records import MessageRecord, UnparsedRecord
from ..session.taps import preferred_tap
from .base import Finding
from .checker import Checker


def is_both_taps(rule: Any) -> bool:
    return bool(getattr(type(rule), "both_taps", False))


def both_taps_rules(select: Iterable[str] | None = None, ignore: Iterable[str] | None = None) -> list[type]:
    """The WS6xx rule classes chosen by id prefixes or names (as `select_rules` does for the others)."""
    from .rules.both_taps import BOTH_TAPS_RULES

    def norm(items: Iterable[str] | None) -> list[str]:
        return [p.strip().upper() for item in (items or ()) for p in str(item).split(",") if p.strip()]

    sel, ign = norm(select), norm(ignore)
    names = {r.name.upper(): r.id for r in BOTH_TAPS_RULES}
    sel = [names.get(p, p) for p in sel]
    ign = [names.get(p, p) for p in ign]
    return [r for r in BOTH_TAPS_RULES
            if (not sel or any(r.id.startswith(p) for p in sel)) and not any(r.id.startswith(p) for p in ign)]


class TwoTapChecker:
    """The interface of `Checker` (feed, finish, findings, ctx) over two inner checkers."""

    def __init__(self, checker: Checker, taps: Sequence[str], extra: Iterable[Any] = ()) -> None:
        one = [r for r in checker.rules if not is_both_taps(r)]
        both = [r for r in checker.rules if is_both_taps(r)] + list(extra)
        self.single = Checker(rules=one)
        self.both = Checker(rules=both, feed_timeline=False)
        self.keep = preferred_tap(taps)
        self.rules = checker.rules
        self._order: list[Finding] = []

    @property
    def ctx(self) -> Any:
        return self.single.ctx

    def feed(self, rec: Any) -> list[Finding]:
        out = self.both.feed(rec) if self.both.rules else []
        if not (isinstance(rec, (MessageRecord, UnparsedRecord)) and rec.tap != self.keep):
            out = self.single.feed(rec) + out
        return out

    def feed_all(self, records: Iterable[Any]) -> list[Finding]:
        out: list[Finding] = []
        for rec in records:
            out.extend(self.feed(rec))
        return out

    def finish(self) -> list[Finding]:
        return self.single.finish() + self.both.finish()

    @property
    def findings(self) -> list[Finding]:
        return self.single.findings + self.both.findings

    def check(self, records: Iterable[Any]) -> list[Finding]:
        self.feed_all(records)
        self.finish()
        return self.findings


def checker_for(checker: Checker, taps: Sequence[str], select: Iterable[str] | None = None,
                ignore: Iterable[str] | None = None) -> Checker | TwoTapChecker:
    """`checker` itself for a one-tap session; otherwise a TwoTapChecker over its rules plus the
    both-taps rules (WS6xx) that `select`/`ignore` let through."""
    if len(taps) < 2:
        return checker
    return TwoTapChecker(checker, taps, [cls() for cls in both_taps_rules(select, ignore)])
