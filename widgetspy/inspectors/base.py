"""The inspector's value objects: severities, findings, and the Rule base class.

A rule is a small sans-IO object. It names the messages it wants (by
`msg_type`, or `comm_msg:<method>` for widget comm messages, or `*`), the
recorder events it wants, and is called with each such record and the shared
`Context` (what every rule needs to know about comms, requests and kernel
epochs). It reports through `ctx.report(...)`. `finish(ctx)` runs the
end-of-session checks. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from ..session.records import EventRecord, MessageRecord, UnparsedRecord
    from .context import Context


class Severity(enum.IntEnum):
    """Ordered: a `--fail-on warning` run fails on warnings and errors."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (error, warning or info)") from None


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation: which rule, how bad, where (seq, model), what, and the
    offending message (a short excerpt)."""

    rule_id: str
    severity: Severity
    seq: int
    message: str
    t: float = 0.0
    model_id: str | None = None
    model_name: str | None = None
    excerpt: str = ""
    related_seq: tuple[int, ...] = ()  # other messages involved (the parent, the open...)

    @property
    def model_label(self) -> str:
        if not self.model_id:
            return ""
        name = (self.model_name or "?").removesuffix("Model")
        return f"{name} {self.model_id[:8]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "severity": self.severity.label,
            "seq": self.seq,
            "t": round(self.t, 6),
            "model_id": self.model_id,
            "model_name": self.model_name,
            "message": self.message,
            "excerpt": self.excerpt,
            "related_seq": list(self.related_seq),
        }

    def one_line(self) -> str:
        model = f" [{self.model_label}]" if self.model_id else ""
        return f"{self.severity.label:<7} {self.rule_id} seq {self.seq}{model}: {self.message}"


class Rule:
    """Base class of every rule. Subclasses set the class attributes and
    override the hooks they need; a rule instance holds its own state, so one
    instance checks one session."""

    id: ClassVar[str] = ""
    name: ClassVar[str] = ""  # short kebab-case name, e.g. "duplicate-msg-id"
    severity: ClassVar[Severity] = Severity.ERROR
    title: ClassVar[str] = ""  # one line
    description: ClassVar[str] = ""  # one paragraph
    source: ClassVar[str] = ""  # protocol-notes / bug-patterns reference
    category: ClassVar[str] = ""
    # dispatch: message keys ("status", "comm_open", "comm_msg:update", "comm_msg:*", "*"), each
    # optionally for one direction only ("comm_msg:echo_update@F": to front-ends, "@K": to the kernel),
    # recorder event names ("*" for all) and unparsed frames
    messages: ClassVar[tuple[str, ...]] = ()
    events: ClassVar[tuple[str, ...]] = ()
    unparsed: ClassVar[bool] = False
    # "wire" / "comm": the rule never reports on a message the context found healthy at that level
    # (`Context.begin` defines WIRE_OK and COMM_OK), so the checker does not call it for one; the rule
    # still checks everything itself when it is called
    skip_healthy: ClassVar[str] = ""
    # True for the rules that compare the kernel's copy of each message (ZMQ tap) with the browser's
    # (websocket tap), WS6xx: a Checker runs them only on a session with both taps, and feeds them
    # every record; the other rules read one tap's copy
    both_taps: ClassVar[bool] = False

    def bind(self, rules: list["Rule"]) -> None:
        """Called once with every rule of the checker before the first record
        (rules that share work can elect one of them to do it)."""

    def on_message(self, rec: "MessageRecord", ctx: "Context") -> None:  # pragma: no cover - overridden
        pass

    def on_event(self, rec: "EventRecord", ctx: "Context") -> None:  # pragma: no cover - overridden
        pass

    def on_unparsed(self, rec: "UnparsedRecord", ctx: "Context") -> None:  # pragma: no cover - overridden
        pass

    def finish(self, ctx: "Context") -> None:
        pass

    @classmethod
    def meta(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "name": cls.name,
            "severity": cls.severity.label,
            "category": cls.category,
            "title": cls.title,
            "description": cls.description,
            "source": cls.source,
            "taps": 2 if cls.both_taps else 1,
        }


# ---------------------------------------------------------------- excerpts

EXCERPT_WIDTH = 240


def excerpt_of(rec: Any, width: int = EXCERPT_WIDTH) -> str:
    """A one-line excerpt of a record: direction, channel, type, then the
    content as compact JSON, cut at `width` characters."""
    msg = getattr(rec, "msg", None)
    if msg is None:
        reason = getattr(rec, "reason", None)
        if reason is not None:
            return f"unparsed {rec.direction.arrow} {rec.channel.value}: {reason} [{rec.preview[:48]}]"
        return f"event {getattr(rec, 'event', '?')}"
    try:
        body = json.dumps(msg.content, separators=(",", ":"), ensure_ascii=False, default=_default,
                          allow_nan=True)
    except (TypeError, ValueError):
        body = repr(msg.content)
    if len(body) > width:
        body = body[: width - 1] + "…"
    nbuf = f" +{len(msg.buffers)} buffer(s)" if msg.buffers else ""
    return f"{rec.direction.arrow} {rec.channel.value} {msg.msg_type} {body}{nbuf}"


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    return str(value)


@dataclass
class RuleSet:
    """Rules by id, in id order."""

    rules: dict[str, type[Rule]] = field(default_factory=dict)

    def add(self, cls: type[Rule]) -> type[Rule]:
        if not cls.id or cls.id in self.rules:
            raise ValueError(f"rule id {cls.id!r} missing or used twice")
        self.rules[cls.id] = cls
        return cls

    def ordered(self) -> list[type[Rule]]:
        return [self.rules[k] for k in sorted(self.rules)]


REGISTRY = RuleSet()


def rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator: register a rule."""
    return REGISTRY.add(cls)
