"""Session format v1: JSON Lines <-> typed records. Sans-IO.

Line 1 is the header, every further line one record (see docs/session-format.md).
Lines are produced by `encode_*` and consumed by `SessionDecoder`, which
knows nothing about files: it is fed lines and returns records.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from typing import Any, Iterable, Iterator, Union

import msgspec
import orjson

try:  # SIMD base64: ~50x binascii's speed on a 1 MiB buffer (pyproject.toml says why it is a dependency)
    from pybase64 import b64encode as _b64encode
except ImportError:  # pragma: no cover - the same bytes, slower
    def _b64encode(buf: bytes | bytearray | memoryview) -> bytes:
        return binascii.b2a_base64(buf, newline=False)

from ..codec.jsontext import JSONTextError, dumps, loads
from ..message import Channel, Direction, Message
from .records import EventRecord, MessageRecord, Record, SessionHeader, UnparsedRecord

FORMAT_NAME = "widgetspy-session"
FORMAT_VERSION = 1


class SessionFormatError(ValueError):
    """A line that is not part of a valid session; the text is one line."""


class SessionReadError(Exception):
    """The file cannot be read as a session. str() is a one-line message.

    (Raised by `session.files`, and by `EncodedBuffers` when a buffer of a
    streamed record turns out to be corrupt on first use.)"""


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
        "data": _b64encode(buf).decode("ascii"),
    }


def _splice_buffers(head: bytes, rec: MessageRecord) -> bytes:
    """The line: `head` (the record's JSON without buffers) with the buffer entries spliced in, the same
    bytes `orjson.dumps(encode_buffer(buf))` gives (base64 and hex digits need no JSON escaping): no str
    copy of the base64 text, orjson never scans it (a 1 MiB buffer is 1.4 MB of it), one join."""
    pieces = [head[:-1], b',"buffers":[']
    for i, buf in enumerate(rec.msg.buffers):
        pieces.append(b'%s{"size":%d,"sha256":"%s","data":"' % (
            b"," if i else b"", len(buf), hashlib.sha256(buf).hexdigest().encode("ascii")))
        pieces.append(_b64encode(buf))
        pieces.append(b'"}')
    pieces.append(b'],"frames":%d,"bytes":%d}\n' % (rec.frames, rec.size))
    return b"".join(pieces)


def encode_message_parts(rec: MessageRecord) -> tuple[bytes | None, bytes]:
    """``(its JSON without the buffers or None, the record's line)``: one encoding for both, for a
    message whose JSON is strict (what the redactor scans, then what it writes); None otherwise."""
    if not rec.strict_json:
        return None, encode_record(rec)
    head = orjson.dumps(_message_obj(rec))
    return head, _splice_buffers(head, rec)


def _message_obj(rec: MessageRecord) -> dict[str, Any]:
    m = rec.msg
    return {
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
    }


def encode_record(rec: Record) -> bytes:
    if isinstance(rec, MessageRecord):
        if rec.strict_json:
            # the line without its buffers, then the buffer entries spliced in as bytes
            return encode_message_parts(rec)[1]
        obj = _message_obj(rec)
        m = rec.msg
        obj["buffers"] = [encode_buffer(b) for b in m.buffers]
        obj["frames"] = rec.frames
        obj["bytes"] = rec.size
        obj["strict_json"] = False
        return dumps(obj, strict=False) + b"\n"
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


_b64decode = msgspec.convert


def decode_buffer(entry: Any) -> bytes:
    """One `buffers` entry ({size, sha256, data}) -> bytes, size and digest checked."""
    if isinstance(entry, _Buffer):
        data, size, digest = entry.data, entry.size, entry.sha256
    elif isinstance(entry, dict) and isinstance(entry.get("data"), str):
        data, size, digest = entry["data"], entry.get("size"), entry.get("sha256")
    else:
        raise SessionFormatError("buffer entry without base64 data")
    try:
        # msgspec's base64 decoder is 5x faster than binascii's on 3.11 (4 KiB:
        # 3.3 vs 18 us); it takes only canonical base64, so anything else goes
        # to the lenient a2b_base64 as before (a garbled text then still fails
        # the size or digest check below)
        buf = _b64decode(data, bytes)
    except msgspec.ValidationError:
        try:
            buf = binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            raise SessionFormatError("buffer data is not base64") from None
    if size != len(buf):
        raise SessionFormatError(f"buffer is {len(buf)} bytes, header says {size}")
    if digest is not None and hashlib.sha256(buf).hexdigest() != digest:
        raise SessionFormatError("buffer sha256 does not match its data")
    return buf


class EncodedBuffers(list):
    """`Message.buffers` of a record read from a file: a list of bytes whose
    entries are base64-decoded and checked (size, sha256) when first used.

    Decoding and hashing a buffer costs more than parsing the rest of its
    record (a few KiB of base64: several microseconds; see
    benchmarks/bench_timeline.py), and many readers never look at the bytes. `len()` and truth need no decoding; anything that reads an item
    (indexing, iterating, comparing, copying) decodes them all first, and a
    corrupt buffer then raises SessionReadError naming its line. Once decoded
    it is an ordinary list of bytes.
    """

    __slots__ = ("_source", "_lineno", "_encoded")

    def __init__(self, entries: list[Any], source: str = "", lineno: int = 0) -> None:
        super().__init__(entries)  # placeholders until decoded, so len() is right
        self._source = source
        self._lineno = lineno
        self._encoded = True

    @property
    def sizes(self) -> list[int]:
        """The byte size of each buffer, without decoding (as the file says)."""
        if self._encoded:
            return [e.size if isinstance(e.size, int) else -1 for e in list.__iter__(self)]
        return [len(b) for b in list.__iter__(self)]

    def decode(self) -> "EncodedBuffers":
        """Decode and check every buffer now (raises SessionReadError)."""
        if self._encoded:
            try:
                decoded = [decode_buffer(e) for e in list.__iter__(self)]
            except SessionFormatError as exc:
                where = f"{self._source}: line {self._lineno}" if self._source else f"line {self._lineno}"
                raise SessionReadError(f"{where}: {exc}") from None
            list.__setitem__(self, slice(None), decoded)
            self._encoded = False
        return self

    def _plain(self) -> list[bytes]:
        return list(list.__iter__(self.decode()))

    def __getitem__(self, index: Any) -> Any:
        return list.__getitem__(self.decode(), index)

    def __iter__(self) -> Any:
        return list.__iter__(self.decode())

    def __reversed__(self) -> Any:
        return list.__reversed__(self.decode())

    def __contains__(self, value: object) -> bool:
        return list.__contains__(self.decode(), value)

    def __eq__(self, other: object) -> bool:
        return self._plain() == (other._plain() if isinstance(other, EncodedBuffers) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: Any) -> bool:
        return self._plain() < list(other)

    def __le__(self, other: Any) -> bool:
        return self._plain() <= list(other)

    def __gt__(self, other: Any) -> bool:
        return self._plain() > list(other)

    def __ge__(self, other: Any) -> bool:
        return self._plain() >= list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._plain())

    def __add__(self, other: Any) -> list[bytes]:
        return self._plain() + list(other)

    def __radd__(self, other: Any) -> list[bytes]:
        return list(other) + self._plain()

    def __mul__(self, n: Any) -> list[bytes]:
        return self._plain() * n

    __rmul__ = __mul__

    def __reduce__(self) -> Any:
        return (list, (self._plain(),))

    def __copy__(self) -> list[bytes]:
        return self._plain()

    def copy(self) -> list[bytes]:
        return self._plain()

    def index(self, *args: Any) -> int:
        return list.index(self.decode(), *args)

    def count(self, value: Any) -> int:
        return list.count(self.decode(), value)

    # changing it: decode first, so no placeholder is ever mixed with bytes
    def __setitem__(self, index: Any, value: Any) -> None:
        list.__setitem__(self.decode(), index, value)

    def __delitem__(self, index: Any) -> None:
        list.__delitem__(self.decode(), index)

    def __iadd__(self, other: Any) -> "EncodedBuffers":
        list.extend(self.decode(), other)
        return self

    def __imul__(self, n: Any) -> "EncodedBuffers":
        list.__imul__(self.decode(), n)
        return self

    def append(self, value: Any) -> None:
        list.append(self.decode(), value)

    def extend(self, values: Any) -> None:
        list.extend(self.decode(), values)

    def insert(self, index: Any, value: Any) -> None:
        list.insert(self.decode(), index, value)

    def pop(self, *args: Any) -> Any:
        return list.pop(self.decode(), *args)

    def remove(self, value: Any) -> None:
        list.remove(self.decode(), value)

    def reverse(self) -> None:
        list.reverse(self.decode())

    def sort(self, **kw: Any) -> None:
        list.sort(self.decode(), **kw)


# The record schema, for msgspec's typed decoder: one C pass turns a line into
# these structs (enums and numbers checked, unknown keys skipped), several
# times faster than a generic parse followed by Python-level checks.


class _Buffer(msgspec.Struct):
    data: str
    size: Any = None
    sha256: str | None = None


class _Msg(msgspec.Struct):
    header: dict[str, Any]
    parent_header: dict[str, Any]
    metadata: dict[str, Any]
    content: dict[str, Any]


class _MsgLine(msgspec.Struct, tag_field="type", tag="msg"):
    seq: int
    t: float
    msg: _Msg  # (the order of the required fields is the order they are reported missing)
    tap: str
    dir: Direction
    channel: Channel
    peer: str | None = None
    buffers: list[_Buffer] = []
    frames: int = 0
    bytes: int = 0
    strict_json: bool | None = None


class _EventLine(msgspec.Struct, tag_field="type", tag="event"):
    seq: int
    t: float
    event: str


class _UnparsedLine(msgspec.Struct, tag_field="type", tag="unparsed"):
    seq: int
    t: float
    tap: str
    dir: Direction
    channel: Channel
    reason: str
    preview: str = ""
    frames: int = 0
    bytes: int = 0


_LineType = Union[_MsgLine, _EventLine, _UnparsedLine]
_decode_line = msgspec.json.Decoder(_LineType).decode
_decode_any = msgspec.json.Decoder().decode
_MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")
_BAD_TAG = re.compile(r"Invalid value (.*) - at `\$\.type`")


def decode_record(line: bytes | str, lineno: int = 0, source: str = "") -> Record:
    """One record line -> a record. With `lineno` (and the file name in
    `source`) its buffers are `EncodedBuffers`, decoded on first use, whose
    errors name that line; without, they are decoded and checked here."""
    strict = True
    try:
        obj = _decode_line(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # Not strict JSON (NaN/Infinity, kept by the recorder: see
        # docs/session-format.md), numbers msgspec does not hold (integers
        # beyond 64 bits), not JSON, or not a record: the general parser and
        # the same schema decide, and say what is wrong.
        try:
            value, strict = loads(line)
        except JSONTextError as exc:
            raise SessionFormatError(f"not JSON ({exc})") from None
        try:
            obj = msgspec.convert(value, _LineType)
        except msgspec.ValidationError as exc:
            raise _schema_error(exc) from None
    cls = obj.__class__
    if cls is _MsgLine:
        m = obj.msg
        return MessageRecord(
            obj.seq,
            obj.t,
            obj.tap,
            obj.dir,
            obj.channel,
            Message(m.header, m.parent_header, m.metadata, m.content,
                    (EncodedBuffers(obj.buffers, source, lineno) if lineno else [decode_buffer(b) for b in obj.buffers])
                    if obj.buffers else []),
            obj.frames,
            obj.bytes,
            obj.peer,
            strict if obj.strict_json is None else obj.strict_json,
        )
    if cls is _EventLine:
        value = _decode_any(line) if strict else loads(line)[0]
        data = {k: v for k, v in value.items() if k not in _EVENT_KEYS}
        return EventRecord(seq=obj.seq, t=obj.t, event=obj.event, data=data)
    return UnparsedRecord(obj.seq, obj.t, obj.tap, obj.dir, obj.channel, obj.reason, obj.preview, obj.frames,
                          obj.bytes)


def _schema_error(exc: msgspec.ValidationError) -> SessionFormatError:
    text = str(exc).splitlines()[0]
    if text.startswith("Expected `object`") and " - at " not in text:
        return SessionFormatError("a record line must be a JSON object")
    missing = _MISSING_FIELD.search(text)
    if missing:
        where = text.partition(" - at `$")[2].rstrip("`")
        name = f"{where.lstrip('.')}.{missing.group(1)}" if where else missing.group(1)
        return SessionFormatError(f"record without {name!r}")
    tag = _BAD_TAG.search(text)
    if tag:
        return SessionFormatError(f"unknown record type {tag.group(1)}")
    return SessionFormatError(f"bad record: {text[:100]}")


_OBJECT_START = (b"{", "{")  # a record line starts with "{": no need to strip() it to see it is not blank


class SessionDecoder:
    """Feed lines of a session, get the header and then records.

    Knows line numbers so errors can say where; knows nothing of files.
    """

    def __init__(self, source: str = "", *, lazy_buffers: bool = True, decode: Any = None) -> None:
        """`source` (a file name) prefixes the errors of lazily decoded buffers;
        `lazy_buffers=False` decodes and checks every buffer as its line is fed.
        `decode(line, lineno, source)` replaces `decode_record` for record lines
        (`session.lean.decode_lean_record`)."""
        self.header: SessionHeader | None = None
        self.lineno = 0
        self.source = source
        self.lazy_buffers = lazy_buffers
        self._decode = decode or decode_record

    def feed(self, line: bytes | str) -> Record | None:
        """Decode one line (without or with its newline). Returns None for the
        header line and blank lines."""
        self.lineno += 1
        if line[:1] not in _OBJECT_START and not line.strip():
            if self.lineno == 1:
                raise SessionFormatError("not a widgetspy session (empty first line)")
            return None
        try:
            if self.header is None:
                self.header = decode_header(line)
                return None
            if self.lazy_buffers:
                return self._decode(line, self.lineno, self.source)
            return self._decode(line)
        except SessionFormatError as exc:
            raise SessionFormatError(f"line {self.lineno}: {exc}") from None

    def records(self, lines: Iterable[bytes | str]) -> Iterator[Record]:
        """`feed` every line, yielding the records: the same results in one
        loop (reading a whole stream costs no call per line). A line that does
        not decode raises SessionFormatError as `feed` does, with the line
        itself as the error's `.line`."""
        it = iter(lines)
        while self.header is None:  # the header line (and any blank ones before it)
            for line in it:
                self.feed(line)
                break
            else:
                return
        decode, source, lazy = self._decode, self.source, self.lazy_buffers
        lineno = self.lineno
        try:
            for line in it:
                lineno += 1
                try:
                    rec = decode(line, lineno, source) if lazy else decode(line)
                except SessionFormatError as exc:
                    if line[:1] not in _OBJECT_START and not line.strip():
                        continue  # a blank line (decoded first: they are rare)
                    err = SessionFormatError(f"line {lineno}: {exc}")
                    err.line = line  # type: ignore[attr-defined]
                    raise err from None
                yield rec
        finally:
            self.lineno = lineno

    def feed_all(self, lines: Iterable[bytes | str]) -> list[Record]:
        out = []
        for line in lines:
            rec = self.feed(line)
            if rec is not None:
                out.append(rec)
        return out
