"""Lean message records: a record line decoded for readers that need only the
final widget state (the timeline's `history=False` path). Sans-IO.

The same line format and the same typed decoder as `format.decode_record`, with
one difference: of `header` and `parent_header` only the fields the timeline
reads are decoded (msg_id, msg_type, session; the parent's msg_id), into
structs instead of dicts. Building those two dicts is a third of the cost of
decoding a typical line (benchmarks/bench_timeline.py, `parse_lean`).

A `LeanMessageRecord` has the attributes of a `MessageRecord` (seq, t, tap,
direction, channel, msg, frames, size, peer, strict_json) and its `msg` the
accessors of a `Message` (msg_id, msg_type, session, parent_id, comm_id,
comm_data, comm_method, content, metadata, buffers), with the same values;
`msg.header` and `msg.parent_header` are the lean structs. A line the lean
schema does not take (NaN, values of an unexpected type, not a record) is
decoded by `decode_record`, so a lean reader yields an ordinary `MessageRecord`
for it, or raises the same error: the two never disagree on what a line means
(tests/test_session_lean.py checks every record of the real recordings).
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from ..message import Channel, Direction
from .format import EncodedBuffers, Record, _Buffer, _EventLine, _UnparsedLine, decode_buffer, decode_record
from .records import RecordAccessors


class LeanHeader(msgspec.Struct):
    msg_id: str | None = None
    msg_type: str | None = None
    session: str | None = None


class LeanParentHeader(msgspec.Struct):
    msg_id: str | None = None


class LeanMessage(msgspec.Struct):
    header: LeanHeader
    parent_header: LeanParentHeader
    metadata: dict[str, Any]
    content: dict[str, Any]
    # not part of the line's `msg` object: the reader moves the record's
    # buffers here (EncodedBuffers, decoded on first use), as Message has them
    buffers: list[Any] = []

    # the accessors of `Message`, with its values
    @property
    def msg_id(self) -> str | None:
        return self.header.msg_id

    @property
    def msg_type(self) -> str:
        return self.header.msg_type or ""

    @property
    def session(self) -> str | None:
        return self.header.session

    @property
    def parent_id(self) -> str | None:
        return self.parent_header.msg_id

    @property
    def comm_id(self) -> str | None:
        cid = self.content.get("comm_id")
        return cid if cid.__class__ is str or isinstance(cid, str) else None

    @property
    def comm_data(self) -> dict[str, Any]:
        data = self.content.get("data")
        return data if data.__class__ is dict or isinstance(data, dict) else {}

    @property
    def comm_method(self) -> str | None:
        data = self.content.get("data")
        if data.__class__ is not dict and not isinstance(data, dict):
            return None
        method = data.get("method")
        return method if method.__class__ is str or isinstance(method, str) else None


class LeanMessageRecord(msgspec.Struct, RecordAccessors, tag_field="type", tag="msg"):
    seq: int
    t: float
    msg: LeanMessage
    tap: str
    direction: Direction = msgspec.field(name="dir")
    channel: Channel
    peer: str | None = None
    buffers: list[_Buffer] = []
    frames: int = 0
    size: int = msgspec.field(default=0, name="bytes")
    strict_json: bool = True


_decode_lean = msgspec.json.Decoder(Union[LeanMessageRecord, _EventLine, _UnparsedLine]).decode


def decode_lean_record(line: bytes | str, lineno: int = 0, source: str = "") -> LeanMessageRecord | Record:
    """One record line -> a LeanMessageRecord, or what `decode_record` makes of
    it when it is not a plain message line (events, unparsed frames, NaN,
    unexpected types). As with `decode_record`, with `lineno` the buffers are
    `EncodedBuffers` (checked on first use, errors name the line); without,
    they are decoded and checked here."""
    try:
        rec = _decode_lean(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return decode_record(line, lineno, source)
    if rec.__class__ is not LeanMessageRecord:
        return decode_record(line, lineno, source)  # events and unparsed frames: rare, decoded the full way
    msg = rec.msg
    if rec.buffers or msg.buffers:
        if not rec.buffers:
            msg.buffers = []
        elif lineno:
            msg.buffers = EncodedBuffers(rec.buffers, source, lineno)
        else:
            msg.buffers = [decode_buffer(b) for b in rec.buffers]
    return rec
