"""The typed records of a session file. No I/O here.

A session is a header followed by records in capture order:
- MessageRecord: one Jupyter message seen on a tap, with its direction and channel;
- EventRecord: something that is not a message (kernel started, client
  connected, kernel restarted or died, heartbeat counts, recording stopped);
- UnparsedRecord: frames that did not decode as a message (forwarded anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from ..message import Channel, Direction, Message


@dataclass(slots=True)
class SessionHeader:
    format_version: int
    widgetspy_version: str
    created: str  # ISO 8601, UTC
    kernel: dict[str, Any]  # name, display_name, language, implementation, protocol_version ...
    taps: list[str]
    recorder: dict[str, Any] = field(default_factory=dict)  # how it was recorded (mode, pid)


class RecordAccessors:
    """`msg_type` and `msg_id` of a message record, from its `msg` (shared by
    `MessageRecord` and the lean reader's `LeanMessageRecord`)."""

    __slots__ = ()

    @property
    def msg_type(self) -> str:
        return self.msg.msg_type  # type: ignore[attr-defined]

    @property
    def msg_id(self) -> str | None:
        return self.msg.msg_id  # type: ignore[attr-defined]


@dataclass(slots=True)
class MessageRecord(RecordAccessors):
    seq: int
    t: float  # seconds since the recording started
    tap: str  # "zmq" (kernel side) or "ws" (browser websocket)
    direction: Direction
    channel: Channel
    msg: Message
    frames: int = 0  # raw frame count on the wire (identities and signature included)
    size: int = 0  # raw byte count on the wire
    peer: str | None = None  # client routing identity, or the IOPub topic
    strict_json: bool = True  # False: the JSON held NaN/Infinity


@dataclass(slots=True)
class EventRecord:
    seq: int
    t: float
    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class UnparsedRecord:
    seq: int
    t: float
    tap: str
    direction: Direction
    channel: Channel
    reason: str
    preview: str  # hex of the first bytes
    frames: int = 0
    size: int = 0


Record = Union[MessageRecord, EventRecord, UnparsedRecord]

# Event names written by the recorder (EventRecord.event).
KERNEL_STARTED = "kernel_started"
KERNEL_RESTARTED = "kernel_restarted"
KERNEL_EXITED = "kernel_exited"  # exit_code, signal, expected, cause
CLIENT_CONNECTED = "client_connected"
HEARTBEAT = "heartbeat"
RECORDING_STOPPED = "recording_stopped"
