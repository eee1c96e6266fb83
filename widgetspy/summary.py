"""What `widgetspy show` prints: a summary of a session, built from its records.

Sans-IO: feed records with `add`, read the fields.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .message import WIDGET_TARGET, Channel, Direction
from .session.records import EventRecord, MessageRecord, Record, SessionHeader, UnparsedRecord


@dataclass
class ModelSummary:
    comm_id: str
    model_name: str
    model_module: str  # "<module> <version>"
    opened_seq: int
    opened_by: str  # "kernel" | "frontend"
    closed_seq: int | None = None
    closed_by: str | None = None
    updates: int = 0


@dataclass
class SessionSummary:
    header: SessionHeader
    records: int = 0
    first_t: float | None = None
    last_t: float = 0.0
    messages: int = 0
    bytes: int = 0
    buffers: int = 0
    buffer_bytes: int = 0
    by_channel: Counter = field(default_factory=Counter)  # (channel, direction) -> n
    by_type: Counter = field(default_factory=Counter)  # (msg_type, direction) -> n
    comm_targets: Counter = field(default_factory=Counter)
    models: dict[str, ModelSummary] = field(default_factory=dict)
    unparsed: list[UnparsedRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    clients: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def add(self, rec: Record) -> None:
        self.records += 1
        if self.first_t is None:
            self.first_t = rec.t
        self.last_t = max(self.last_t, rec.t)
        if isinstance(rec, EventRecord):
            self.events.append(rec)
        elif isinstance(rec, UnparsedRecord):
            self.unparsed.append(rec)
        else:
            self._message(rec)

    def _message(self, rec: MessageRecord) -> None:
        msg = rec.msg
        self.messages += 1
        self.bytes += rec.size
        self.buffers += len(msg.buffers)
        self.buffer_bytes += sum(len(b) for b in msg.buffers)
        self.by_channel[(rec.channel, rec.direction)] += 1
        self.by_type[(msg.msg_type, rec.direction)] += 1
        if rec.peer and rec.channel is not Channel.IOPUB:
            self.clients.add(rec.peer)
        side = "kernel" if rec.direction is Direction.TO_FRONTEND else "frontend"
        cid = msg.comm_id
        if msg.msg_type == "comm_open" and cid:
            target = msg.content.get("target_name")
            self.comm_targets[target] += 1
            if target == WIDGET_TARGET:
                state = msg.comm_data.get("state")
                state = state if isinstance(state, dict) else {}
                module = f"{state.get('_model_module', '?')} {state.get('_model_module_version', '?')}"
                self.models[cid] = ModelSummary(cid, str(state.get("_model_name", "?")), module, rec.seq, side)
        elif msg.msg_type == "comm_msg" and cid in self.models:
            if msg.comm_method in ("update", "echo_update"):
                self.models[cid].updates += 1
        elif msg.msg_type == "comm_close" and cid in self.models:
            m = self.models[cid]
            if m.closed_seq is None:
                m.closed_seq, m.closed_by = rec.seq, side

    @property
    def duration(self) -> float:
        return self.last_t - (self.first_t or 0.0)


def summarize(header: SessionHeader, records: "list[Record] | object") -> SessionSummary:
    summary = SessionSummary(header)
    for rec in records:  # type: ignore[attr-defined]
        summary.add(rec)
    return summary
