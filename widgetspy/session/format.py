"""Session format v1: JSON Lines <-> typed records. Sans-IO.

Line 1 is the header, every further line one record (see docs/session-format.md).
Lines are produced by `encode_*` and consumed by `SessionDecoder`, which
knows nothing about files: it is fed lines and returns records.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Iterable

import orjson

from ..codec.jsontext import JSONTextError, dumps, loads
from ..message import Channel, Direction, Message
from .records import EventRecord, MessageRecord, Record, SessionHeader, UnparsedRecord

FORMAT_NAME = "widgetspy-session"
FORMAT_VERSION = 1


class SessionFormatError(ValueError):
    """A line that is not part of a valid session; the text is one line."""


# ---------------------------------------------------------------- encoding


def encode_header(header: SessionHeader) -> bytes:
    obj = {
        "format": FORMAT_NAME,
        "format_version": header.format_version,
        "widgetspy_version": header.widgetspy_version,
        "created": header.created,
        "kernel": header.kernel,
        "taps": header.taps,
        "recorder": header.recorder,
    }
    return orjson.dumps(obj) + b"\n"


def encode_buffer(buf: bytes) -> dict[str, Any]:
    return {
        "size": len(buf),
        "sha256": hashlib.sha256(buf).hexdigest(),
        "data": base64.b64encode(buf).decode("ascii"),
    }


def encode_record(rec: Record) -> bytes:
    if isinstance(rec, MessageRecord):
        m = rec.msg
        obj: dict[str, Any] = {
            "seq": rec.seq,
            "t": round(rec.t, 6),
            "type": "msg",
            "tap": rec.tap,
            "dir": rec.direction.value,
            "channel": rec.channel.value,
            "peer": rec.peer,
            "msg": {
                "header": m.header,
                "parent_header": m.parent_header,
                "metadata": m.metadata,
                "content": m.content,
            },
            "buffers": [encode_buffer(b) for b in m.buffers],
            "frames": rec.frames,
            "bytes": rec.size,
        }
        if not rec.strict_json:
            obj["strict_json"] = False
            return dumps(obj, strict=False) + b"\n"
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    if isinstance(rec, EventRecord):
        obj = {"seq": rec.seq, "t": round(rec.t, 6), "type": "event", "event": rec.event}
        obj.update(rec.data)
        return orjson.dumps(obj) + b"\n"
    if isinstance(rec, UnparsedRecord):
        obj = {
            "seq": rec.seq,
            "t": round(rec.t, 6),
            "type": "unparsed",
            "tap": rec.tap,
            "dir": rec.direction.value,
            "channel": rec.channel.value,
            "reason": rec.reason,
            "preview": rec.preview,
            "frames": rec.frames,
            "bytes": rec.size,
        }
        return orjson.dumps(obj) + b"\n"
    raise TypeError(f"not a session record: {type(rec).__name__}")


# ---------------------------------------------------------------- decoding

# One-step upgrades from an older format_version to the next, applied to the
# header dict and then to each record dict (the mitmproxy io/compat idea).
# Version 1 is the first; add `MIGRATIONS[1] = (upgrade_header, upgrade_record)`
# when version 2 appears.
MIGRATIONS: dict[int, tuple[Any, Any]] = {}

_EVENT_KEYS = frozenset({"seq", "t", "type", "event"})


def decode_header(line: bytes | str) -> SessionHeader:
    try:
        obj, _ = loads(line)
    except JSONTextError:
        raise SessionFormatError("not a widgetspy session (first line is not JSON)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise SessionFormatError("not a widgetspy session (no widgetspy-session header)")
    version = obj.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise SessionFormatError(f"bad format_version {version!r} in the session header")
    while version < FORMAT_VERSION:
        obj = MIGRATIONS[version][0](obj)
        version = obj["format_version"]
    if version > FORMAT_VERSION:
        raise SessionFormatError(
            f"session format_version {version} is newer than this widgetspy reads "
            f"({FORMAT_VERSION}); upgrade widgetspy"
        )
    try:
        return SessionHeader(
            format_version=version,
            widgetspy_version=str(obj.get("widgetspy_version", "?")),
            created=str(obj.get("created", "")),
            kernel=dict(obj.get("kernel") or {}),
            taps=list(obj.get("taps") or []),
            recorder=dict(obj.get("recorder") or {}),
        )
    except (TypeError, ValueError) as exc:
        raise SessionFormatError(f"bad session header: {exc}") from None


def decode_buffer(entry: Any) -> bytes:
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
        raise SessionFormatError("buffer entry without base64 data")
    try:
        buf = base64.b64decode(entry["data"], validate=True)
    except ValueError:
        raise SessionFormatError("buffer data is not base64") from None
    if entry.get("size") != len(buf):
        raise SessionFormatError(f"buffer is {len(buf)} bytes, header says {entry.get('size')}")
    digest = entry.get("sha256")
    if digest is not None and hashlib.sha256(buf).hexdigest() != digest:
        raise SessionFormatError("buffer sha256 does not match its data")
    return buf


def decode_record(line: bytes | str) -> Record:
    try:
        obj, strict = loads(line)
    except JSONTextError as exc:
        raise SessionFormatError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise SessionFormatError("a record line must be a JSON object")
    try:
        kind = obj["type"]
        seq = int(obj["seq"])
        t = float(obj["t"])
        if kind == "msg":
            m = obj["msg"]
            msg = Message(
                header=_dict(m["header"], "header"),
                parent_header=_dict(m["parent_header"], "parent_header"),
                metadata=_dict(m["metadata"], "metadata"),
                content=_dict(m["content"], "content"),
                buffers=[decode_buffer(b) for b in obj.get("buffers", [])],
            )
            return MessageRecord(
                seq=seq,
                t=t,
                tap=str(obj["tap"]),
                direction=Direction(obj["dir"]),
                channel=Channel(obj["channel"]),
                msg=msg,
                frames=int(obj.get("frames", 0)),
                size=int(obj.get("bytes", 0)),
                peer=obj.get("peer"),
                strict_json=bool(obj.get("strict_json", strict)),
            )
        if kind == "event":
            data = {k: v for k, v in obj.items() if k not in _EVENT_KEYS}
            return EventRecord(seq=seq, t=t, event=str(obj["event"]), data=data)
        if kind == "unparsed":
            return UnparsedRecord(
                seq=seq,
                t=t,
                tap=str(obj["tap"]),
                direction=Direction(obj["dir"]),
                channel=Channel(obj["channel"]),
                reason=str(obj["reason"]),
                preview=str(obj.get("preview", "")),
                frames=int(obj.get("frames", 0)),
                size=int(obj.get("bytes", 0)),
            )
    except SessionFormatError:
        raise
    except KeyError as exc:
        raise SessionFormatError(f"record without {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise SessionFormatError(f"bad record: {str(exc).splitlines()[0][:100]}") from None
    raise SessionFormatError(f"unknown record type {kind!r}")


def _dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SessionFormatError(f"msg.{name} is not an object")
    return value


class SessionDecoder:
    """Feed lines of a session, get the header and then records.

    Knows line numbers so errors can say where; knows nothing of files.
    """

    def __init__(self) -> None:
        self.header: SessionHeader | None = None
        self.lineno = 0

    def feed(self, line: bytes | str) -> Record | None:
        """Decode one line (without or with its newline). Returns None for the
        header line and blank lines."""
        self.lineno += 1
        if not line.strip():
            if self.lineno == 1:
                raise SessionFormatError("not a widgetspy session (empty first line)")
            return None
        try:
            if self.header is None:
                self.header = decode_header(line)
                return None
            return decode_record(line)
        except SessionFormatError as exc:
            raise SessionFormatError(f"line {self.lineno}: {exc}") from None

    def feed_all(self, lines: Iterable[bytes | str]) -> list[Record]:
        out = []
        for line in lines:
            rec = self.feed(line)
            if rec is not None:
                out.append(rec)
        return out
