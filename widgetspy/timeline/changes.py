"""The timeline's value objects: sides, causes, and one state change.

Small immutable records, produced by `Timeline.feed` and handed out by its
queries. Nothing here knows how they are computed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..message import Channel, Direction


class Side(enum.StrEnum):
    """Whose belief about a model's state: the kernel's or the front-end's."""

    KERNEL = "kernel"
    FRONTEND = "frontend"

    @property
    def short(self) -> str:
        return "K" if self is Side.KERNEL else "F"


BOTH_SIDES: tuple[Side, ...] = (Side.KERNEL, Side.FRONTEND)


class _Missing:
    """The value of a key that is not in the state (before it was set, or after a resync dropped it)."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class ChangeKind(enum.StrEnum):
    OPEN = "open"  # comm_open: the first state
    UPDATE = "update"  # comm_msg update (either direction): key-level merge
    ECHO = "echo_update"  # kernel echo of a front-end update
    RESYNC = "resync"  # full state: request_state reply or update_states; replaces the state
    CLOSE = "close"  # comm_close, or the kernel restarted/exited


class Cause(msgspec.Struct, frozen=True):
    """The message a change answers: a request to the kernel (execute_request,
    a front-end comm_msg/comm_open/comm_close, ...), or the front-end message
    that itself carries the change.

    (A frozen msgspec struct rather than a frozen dataclass: one is made per
    request to the kernel, and it is built 15x faster, 0.09 vs 1.3 us.)"""

    msg_id: str
    msg_type: str
    seq: int
    t: float
    direction: Direction
    channel: Channel
    code: str | None = None  # execute_request
    cell_id: str | None = None  # execute_request metadata.cellId (JupyterLab)
    comm_id: str | None = None  # comm_* messages
    method: str | None = None  # comm_msg data.method
    peer: str | None = None

    def describe(self, width: int = 60) -> str:
        if self.msg_type == "execute_request":
            code = (self.code or "").strip().replace("\n", "⏎ ")
            if len(code) > width:
                code = code[: width - 1] + "…"
            cell = f" cell {self.cell_id}" if self.cell_id else ""
            return f"execute @{self.seq}{cell}: {code}"
        if self.msg_type == "comm_msg":
            return f"front-end {self.method or 'comm_msg'} @{self.seq}"
        return f"{self.msg_type} @{self.seq}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"msg_id": self.msg_id, "msg_type": self.msg_type, "seq": self.seq}
        for name in ("code", "cell_id", "comm_id", "method"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One key of a state: its value before and after (MISSING when absent).
    Binary values are `bytes`, put back where their buffer path says."""

    key: str
    old: Any
    new: Any

    @property
    def changed(self) -> bool:
        return not _same(self.old, self.new)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values
        return False


@dataclass(frozen=True, slots=True)
class Change:
    """A model's state changed on one or both sides at `seq`.

    `seq` is when the side's belief changed: for a front-end message, the
    front-end side changes when it is sent and the kernel side when the kernel
    starts processing it (its `status: busy`), so the same message can give two
    changes with different seqs. `msg_seq` is the seq of the message that
    carried the state. `keys` lists every key the message set (unchanged ones
    too, see `KeyChange.changed`); for OPEN and RESYNC it is the whole state,
    with keys a resync dropped as `new=MISSING`. `ignored` are echo keys the
    front-end dropped because it was waiting for a newer echo of its own.
    """

    seq: int
    t: float
    model_id: str
    epoch: int
    sides: tuple[Side, ...]
    kind: ChangeKind
    direction: Direction
    msg_seq: int
    msg_id: str | None
    keys: tuple[KeyChange, ...] = ()
    cause: Cause | None = None
    ignored: tuple[str, ...] = ()
    note: str = ""

    def applies_to(self, side: Side) -> bool:
        return side in self.sides

    @property
    def changed_keys(self) -> tuple[KeyChange, ...]:
        return tuple(kc for kc in self.keys if kc.changed)

    def key(self, name: str) -> KeyChange | None:
        for kc in self.keys:
            if kc.key == name:
                return kc
        return None


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the traffic the timeline could not make sense of."""

    seq: int
    text: str
    model_id: str | None = None


@dataclass(frozen=True, slots=True)
class View:
    """A widget shown in an output: display_data / execute_result /
    update_display_data carrying the widget-view mimetype."""

    seq: int
    t: float
    model_id: str  # "" means a hidden view
    msg_type: str
    epoch: int
    display_id: str | None = None
    cause: Cause | None = None
    known_model: bool = True  # the model was open on the kernel side when shown


@dataclass(frozen=True, slots=True)
class CustomMessage:
    """A `method: custom` comm_msg on a widget comm."""

    seq: int
    t: float
    model_id: str
    direction: Direction
    content: Any
    json_size: int  # bytes of `content` as compact JSON
    buffer_sizes: tuple[int, ...] = ()
    wire_size: int = 0  # the whole message on the wire, as recorded
    cause: Cause | None = None

    @property
    def size(self) -> int:
        return self.json_size + sum(self.buffer_sizes)


@dataclass(slots=True)
class Epoch:
    """One kernel process lifetime, from its first message to its restart/exit."""

    index: int
    start_seq: int
    start_t: float
    kernel_session: str | None = None  # header.session of the kernel's messages
    started_by: str = ""  # "first message", "kernel_started", "kernel_restarted", "new kernel session"
    end_seq: int | None = None
    end_reason: str | None = None  # "kernel_restarted", "kernel_exited", "new kernel session"
    models: list[str] = field(default_factory=list)  # model ids opened in this epoch


def jsonable(value: Any) -> Any:
    """A value for JSON output: bytes become {"$binary": {"size", "sha256"}}."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        import hashlib

        raw = bytes(value)
        return {"$binary": {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def change_to_json(change: Change, model_name: str | None = None) -> dict[str, Any]:
    """One change as a JSON object (MISSING old/new values are left out)."""
    keys = []
    for kc in change.keys:
        item: dict[str, Any] = {"key": kc.key, "changed": kc.changed}
        if kc.old is not MISSING:
            item["old"] = jsonable(kc.old)
        if kc.new is not MISSING:
            item["new"] = jsonable(kc.new)
        keys.append(item)
    out: dict[str, Any] = {
        "seq": change.seq,
        "t": change.t,
        "model_id": change.model_id,
        "model_name": model_name,
        "epoch": change.epoch,
        "sides": [s.value for s in change.sides],
        "kind": change.kind.value,
        "direction": change.direction.value,
        "msg_seq": change.msg_seq,
        "msg_id": change.msg_id,
        "keys": keys,
    }
    if change.ignored:
        out["ignored"] = list(change.ignored)
    if change.note:
        out["note"] = change.note
    out["cause"] = change.cause.to_json() if change.cause else None
    return out
