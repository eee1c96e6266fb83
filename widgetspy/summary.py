"""What `widgetspy show` prints: a summary of a session, built from its records.

Sans-IO: feed records with `add`, then `finish()` (`summarize` does both), read the fields.

A session with two taps holds most messages twice (the kernel's copy, `tap:
"zmq"`, and the browser's, `tap: "ws"`, with the same msg_id). Every total,
channel, type and model count here counts a message once: the preferred tap's
copy (`session.taps.preferred_tap`, ZMQ) is counted, a copy on another tap with
a msg_id the preferred tap also has is only counted in `by_tap`, and a message seen only on
the other tap (e.g. one the server never passed on) is counted at `finish()`.
`by_tap` has every copy per tap, `on_both` the messages seen on both. (An
IOPub message that went to two browser tabs is one message with three copies.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .message import WIDGET_TARGET, Channel, Direction
from .session.records import EventRecord, MessageRecord, Record, SessionHeader, UnparsedRecord
from .session.taps import preferred_tap


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
    by_tap: Counter = field(default_factory=Counter)  # tap -> message records (every copy)
    on_both: int = 0  # messages seen on the preferred tap and on another one
    # two taps: msg_ids counted from the preferred tap (-> seen on another tap too), and
    # other taps' records whose msg_id the preferred tap has not shown (yet), by msg_id
    _primary: str | None = field(default=None, repr=False)
    _seen: dict = field(default_factory=dict, repr=False)
    _pending: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.header.taps) > 1:
            self._primary = preferred_tap(self.header.taps)

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
            self.by_tap[rec.tap] += 1
            if self._primary is None:
                self._message(rec)
            else:
                self._two_taps(rec)

    def _two_taps(self, rec: MessageRecord) -> None:
        mid = rec.msg.msg_id
        if not isinstance(mid, str):
            self._message(rec)  # cannot be paired: counted as it comes
            return
        if rec.tap == self._primary:
            paired = self._seen.get(mid, False)
            if self._pending.pop(mid, None) is not None:  # its other copy came first (browser -> kernel)
                if not paired:
                    self.on_both += 1
                paired = True
            self._seen[mid] = paired
            self._message(rec)
        elif mid in self._seen:  # a copy of a message already counted
            if not self._seen[mid]:
                self._seen[mid] = True
                self.on_both += 1
        else:  # not (yet) seen on the preferred tap
            self._pending.setdefault(mid, []).append(rec)

    def finish(self) -> "SessionSummary":
        """Count the messages seen only on a non-preferred tap. Call once, after the last `add`."""
        pending, self._pending = self._pending, {}
        for recs in sorted(pending.values(), key=lambda rs: rs[0].seq):
            for rec in recs:
                self._message(rec)
        self._seen.clear()
        return self

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
    return summary.finish()
