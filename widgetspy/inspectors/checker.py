"""The checker: feeds each record to the rules that care about it.

    checker = Checker(select=["WS3"], ignore=["WS319"])
    for rec in records:
        for finding in checker.feed(rec):
            print(finding.one_line())
    for finding in checker.finish():
        ...

Dispatch is by message key (`msg_type`, or `comm_msg:<method>` for comm
messages, and the direction: `@K` to the kernel, `@F` to front-ends) through
a per-key table of bound methods built once, so a record costs only the rules
that asked for it. The shared `Context` reads each message once first
(`ctx.begin`: msg_type, ids, comm, data, method, state, parent request);
the rules all see it in the state *before* the record; then the context
applies it.
The same object works live (records as the recorder writes them), offline on
a file, and inside replay. Not thread-safe: feed it from one thread (or hold
a lock, as `widgetspy record --check` does).

Sessions with both taps (`widgetspy record --web`, header `taps: ["zmq", "ws"]`)
hold most messages twice. Given `taps=header.taps`, the checker feeds the
context, the timeline and the one-tap rules the preferred tap's copy (ZMQ) and
the both-taps rules (`Rule.both_taps`, WS6xx) every record; without two taps
it leaves the both-taps rules out (`Checker.left_out`): they have nothing to
compare, and would only cost time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..message import Direction
from ..session.records import EventRecord, MessageRecord, UnparsedRecord
from ..session.taps import preferred_tap
from .base import REGISTRY, Finding, Rule, Severity
from .context import COMM_OK, NOT_OK, WIRE_OK, Context

if TYPE_CHECKING:  # pragma: no cover
    from ..timeline import Timeline

Handler = Callable[[Any, Context], None]


def all_rules() -> list[type[Rule]]:
    """Every registered rule class, in id order."""
    from . import rules  # noqa: F401  (registers them)

    return REGISTRY.ordered()


def _matches(rule_id: str, patterns: Sequence[str]) -> bool:
    """`WS3` selects WS301..WS399; `WS301` selects one rule; names work too."""
    return any(rule_id.startswith(p.upper()) for p in patterns)


def select_rules(select: Iterable[str] | None = None, ignore: Iterable[str] | None = None) -> list[type[Rule]]:
    """The rule classes chosen by id prefixes (or names). Unknown ids raise ValueError."""
    rules = all_rules()
    by_name = {r.name: r.id for r in rules}
    known = [r.id for r in rules]

    def norm(items: Iterable[str] | None) -> list[str] | None:
        if items is None:
            return None
        out = []
        for item in items:
            for part in str(item).split(","):
                part = part.strip()
                if not part:
                    continue
                part = by_name.get(part, part).upper()
                if not any(k.startswith(part) for k in known):
                    raise ValueError(f"no rule matches {part!r} (see `widgetspy rules`)")
                out.append(part)
        return out

    sel, ign = norm(select), norm(ignore)
    return [r for r in rules if (not sel or _matches(r.id, sel)) and not (ign and _matches(r.id, ign))]


class Checker:
    def __init__(
        self,
        select: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        *,
        rules: Iterable[Rule] | None = None,
        timeline: "Timeline | None" = None,
        feed_timeline: bool = True,
        taps: Sequence[str] | None = None,
    ) -> None:
        """`select`/`ignore`: rule ids or id prefixes (`WS4`) or names. `rules`:
        ready-made rule instances instead. `timeline`: a Timeline to share (the
        checker feeds it first unless `feed_timeline` is False, e.g. when its
        owner already does). `taps`: the session header's taps; with two of them
        the both-taps rules run (see the module docstring), otherwise they are
        left out (listed in `left_out`)."""
        chosen: list[Rule] = [cls() for cls in select_rules(select, ignore)] if rules is None else list(rules)
        self.taps: tuple[str, ...] = tuple(dict.fromkeys(taps or ()))
        two = len(self.taps) >= 2
        self.rules: list[Rule] = [r for r in chosen if two or not r.both_taps]
        self.left_out: list[Rule] = [r for r in chosen if not two and r.both_taps]
        self.ctx = Context(timeline)
        self._feed_timeline = timeline is not None and feed_timeline
        # dispatch tables, one per Context.health level: key -> the handlers to call
        self._cache: tuple[dict[str, tuple[Handler, ...]], ...] = ({}, {}, {})
        self._events: dict[str, list[Handler]] = {}
        self._any_event: list[Handler] = []
        self._unparsed: list[Handler] = []
        for r in self.rules:
            r.bind(self.rules)
        for r in self.rules:
            self.ctx.rule_instances[r.id] = r
            for ev in r.events:
                if ev == "*":
                    self._any_event.append(r.on_event)
                else:
                    self._events.setdefault(ev, []).append(r.on_event)
            if r.unparsed:
                self._unparsed.append(r.on_unparsed)
            cls = type(r)
            if getattr(cls, "on_quiet", None) is not None:
                self.ctx.quiet_hooks.append(r.on_quiet)  # type: ignore[attr-defined]
            if getattr(cls, "on_epoch_end", None) is not None:
                self.ctx.epoch_end_hooks.append(r.on_epoch_end)  # type: ignore[attr-defined]
        self._finished = False
        # two taps: the other tap's copies go to the both-taps rules only (an instance attribute, so
        # that the one-tap path, `Checker.feed`, stays as it is)
        self._keep = preferred_tap(self.taps) if two else None
        self._both = [r for r in self.rules if r.both_taps]
        self._other: dict[str, tuple[Handler, ...]] = {}
        if two:
            self.feed = self._feed_two_taps  # type: ignore[method-assign]

    # ---------------------------------------------------------------- dispatch table

    def _handlers(self, key: str, health: int) -> tuple[Handler, ...]:
        """The rules' on_message for a dispatch key `<msg_type or comm_msg:method>@K|F`
        (to the kernel / to front-ends), in rule order, without the rules that cannot report on a
        message of this health (`Rule.skip_healthy`); built once per key and health."""
        handlers = _matching(self.rules, key, health)
        self._cache[health][key] = handlers
        return handlers

    # ---------------------------------------------------------------- feeding

    def feed(self, rec: Any) -> list[Finding]:
        """Check one record; returns the findings it produced (often [])."""
        ctx = self.ctx
        findings = ctx.findings
        start = len(findings)
        if self._feed_timeline:
            ctx.timeline.feed(rec)  # type: ignore[union-attr]
        cls = rec.__class__
        if cls is MessageRecord:
            key = ctx.begin(rec)
            handlers = self._cache[ctx.health].get(key)
            if handlers is None:
                handlers = self._handlers(key, ctx.health)
            for handler in handlers:
                handler(rec, ctx)
        elif cls is EventRecord:
            for handler in self._any_event:
                handler(rec, ctx)
            for handler in self._events.get(rec.event, ()):
                handler(rec, ctx)
        elif cls is UnparsedRecord:
            for handler in self._unparsed:
                handler(rec, ctx)
        ctx.apply(rec)
        if len(findings) == start:
            return []
        return findings[start:]

    def _feed_two_taps(self, rec: Any) -> list[Finding]:
        """`feed` on a two-tap session: the preferred tap's records (and every event) take the
        one-tap path, where the both-taps rules are dispatched with the others; a copy from the
        other tap goes to the both-taps rules alone, without the context (whose beliefs, and
        `health`, describe the preferred tap's conversation)."""
        cls = rec.__class__
        if (cls is not MessageRecord and cls is not UnparsedRecord) or rec.tap == self._keep:
            return Checker.feed(self, rec)
        ctx = self.ctx
        findings = ctx.findings
        start = len(findings)
        if cls is MessageRecord:
            key = _key_of(rec)
            handlers = self._other.get(key)
            if handlers is None:
                handlers = self._other[key] = _matching(self._both, key, NOT_OK)
            for handler in handlers:
                handler(rec, ctx)
        else:
            for r in self._both:
                if r.unparsed:
                    r.on_unparsed(rec, ctx)
        if len(findings) == start:
            return []
        return findings[start:]

    def feed_all(self, records: Iterable[Any]) -> list[Finding]:
        out: list[Finding] = []
        feed = self.feed
        for rec in records:
            found = feed(rec)
            if found:
                out.extend(found)
        return out

    def finish(self) -> list[Finding]:
        """End-of-session checks; returns the findings they produced."""
        if self._finished:
            return []
        self._finished = True
        ctx = self.ctx
        start = len(ctx.findings)
        for r in self.rules:
            r.finish(ctx)
        return ctx.findings[start:]

    def check(self, records: Iterable[Any]) -> list[Finding]:
        """Every finding of a whole session, in the order found."""
        self.feed_all(records)
        self.finish()
        return list(self.ctx.findings)

    @property
    def findings(self) -> list[Finding]:
        return list(self.ctx.findings)


def _matching(rules: Iterable[Rule], key: str, health: int) -> tuple[Handler, ...]:
    """The on_message of the rules that asked for dispatch key `key` (see `Checker._handlers`)."""
    base, _, side = key.rpartition("@")
    out = []
    for r in rules:
        skip = r.skip_healthy
        if skip and health >= (WIRE_OK if skip == "wire" else COMM_OK):
            continue
        for want in r.messages:
            want_base, _, want_side = want.partition("@")
            if want_side and want_side != side:
                continue
            if want_base == "*" or want_base == base or (want_base == "comm_msg:*" and base.startswith("comm_msg:")):
                out.append(r.on_message)
                break
    return tuple(out)


def _key_of(rec: MessageRecord) -> str:
    """The dispatch key of a message, as `Context.begin` computes it, without touching a context."""
    msg = rec.msg
    header = msg.header
    mtype = header.get("msg_type") if header.__class__ is dict else None
    if mtype.__class__ is not str:
        mtype = ""
    if mtype == "comm_msg":
        content = msg.content
        data = content.get("data") if content.__class__ is dict else None
        method = data.get("method") if data.__class__ is dict else None
        mtype = "comm_msg:" + method if method.__class__ is str else "comm_msg:"
    return mtype + ("@K" if rec.direction is Direction.TO_KERNEL else "@F")


def check_records(records: Iterable[Any], select: Iterable[str] | None = None,
                  ignore: Iterable[str] | None = None, taps: Sequence[str] | None = None) -> list[Finding]:
    return Checker(select, ignore, taps=taps).check(records)


def worst(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)
