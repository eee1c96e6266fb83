"""The kernel websocket's framings (browser <-> jupyter_server): frame <-> Message. Sans-IO.

One websocket (``/api/kernels/<id>/channels``) multiplexes all channels, so
every frame names its channel. Three framings exist; the negotiated
subprotocol picks one (../shared/docs/protocol-notes.md §4):

- legacy text (no subprotocol, message without buffers): one JSON object with
  the four dicts and a top-level ``"channel"``; the server adds ``msg_id``,
  ``msg_type`` and ``buffers`` when it writes one;
- legacy binary (no subprotocol, message with buffers): ``u32 nbufs`` then
  ``nbufs`` u32 offsets, all **big-endian**, from the frame start; part 0 is
  that JSON (without ``buffers``), parts 1.. the buffers, the last running to
  the end of the frame;
- ``v1.kernel.websocket.jupyter.org`` (always binary): ``u64 n`` then ``n``
  u64 offsets, all **little-endian**, ``n = 6 + buffers``; parts are channel,
  header, parent_header, metadata, content, buffers...; the last offset is the
  frame length.

`decode` checks invariant 34 (offsets consistent with the frame, known channel)
and raises `WsFrameError` with the reason; `encode` writes a frame the way the
server (``server=True``) or a browser would.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from ..message import Channel, Message
from .jsontext import JSONTextError, dumps, loads, loads_object

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
WS_CHANNELS = frozenset({"shell", "iopub", "stdin", "control"})
_CHANNELS = {c: Channel(c) for c in WS_CHANNELS}
_CHANNELS_BY_BYTES = {c.encode("ascii"): Channel(c) for c in WS_CHANNELS}
_V1_TABLES: dict[int, struct.Struct] = {}  # offset table layout by part count
_PARTS = ("header", "parent_header", "metadata", "content")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct(">I")
MAX_PARTS = 1 << 16  # a frame claiming more parts than this is garbage, not a message


class WsFrameError(ValueError):
    """A frame that is not a kernel message in the connection's framing; the text says why."""


@dataclass(slots=True)
class WsMessage:
    """A decoded websocket frame: the message, its channel, and how it was framed."""

    channel: Channel
    message: Message
    strict_json: bool = True  # False: the JSON held NaN/Infinity
    framing: str = "v1"  # "v1", "text" (legacy JSON) or "binary" (legacy with buffers)


def framing_name(protocol: str | None) -> str:
    """"v1" for the v1 subprotocol, "legacy" for none; anything else is not a kernel framing."""
    if not protocol:
        return "legacy"
    if protocol == V1_PROTOCOL:
        return "v1"
    raise WsFrameError(f"unknown kernel websocket subprotocol {protocol!r}")


# ---------------------------------------------------------------- decoding


def decode(data: bytes | bytearray | memoryview | str, is_text: bool, protocol: str | None) -> WsMessage:
    """One websocket message of a kernel channel connection -> WsMessage. Raises WsFrameError.

    `is_text` is the frame type (text or binary); `protocol` the subprotocol the
    server selected (None or "" for the legacy framing).
    """
    if protocol == V1_PROTOCOL:
        if is_text:
            raise WsFrameError("text frame on a v1.kernel.websocket.jupyter.org connection (v1 is binary only)")
        return decode_v1(data)  # type: ignore[arg-type]
    if protocol:
        raise WsFrameError(f"unknown kernel websocket subprotocol {protocol!r}")
    if is_text:
        return decode_legacy_text(data)
    return decode_legacy_binary(data)  # type: ignore[arg-type]


def decode_v1(data: bytes | bytearray | memoryview) -> WsMessage:
    view = memoryview(data)
    size = len(view)
    if size < 8:
        raise WsFrameError(f"v1 frame of {size} bytes is shorter than its 8-byte offset count")
    (n,) = _U64.unpack_from(view, 0)
    if n < 6:
        raise WsFrameError(f"v1 offset_number {n} < 6 (channel, four dicts and the end need 6)")
    if n > MAX_PARTS or 8 * (n + 1) > size:
        raise WsFrameError(f"v1 offset_number {n} needs a {8 * (n + 1)}-byte offset table; frame is {size} bytes")
    table = _V1_TABLES.get(n)
    if table is None:
        table = struct.Struct(f"<{n}Q")
        if n <= 64:
            _V1_TABLES[n] = table
    offsets = table.unpack_from(view, 8)
    # the common case in one comparison: starts right after the table, never decreases, ends at the frame's end
    if not (offsets[0] == 8 * (n + 1) and offsets[-1] == size and list(offsets) == sorted(offsets)):
        _check_offsets(offsets, 8 * (n + 1), size, "v1")
        raise WsFrameError(f"v1 last offset {offsets[-1]} != frame length {size}")
    channel = _CHANNELS_BY_BYTES.get(bytes(view[offsets[0] : offsets[1]]))
    if channel is None:
        channel = _channel(bytes(view[offsets[0] : offsets[1]]))  # raises, with the reason
    strict = True
    try:  # the fast path: four strict JSON objects
        dicts = [orjson.loads(view[offsets[i] : offsets[i + 1]]) for i in (1, 2, 3, 4)]
        if not all(type(d) is dict for d in dicts):
            raise TypeError
    except (orjson.JSONDecodeError, TypeError):  # NaN/Infinity, not JSON, not an object: say which part
        dicts = []
        for i, name in enumerate(_PARTS, start=1):
            try:
                value, ok = loads_object(view[offsets[i] : offsets[i + 1]], name)
            except JSONTextError as exc:
                raise WsFrameError(str(exc)) from None
            dicts.append(value)
            strict = strict and ok
    buffers = [bytes(view[offsets[i] : offsets[i + 1]]) for i in range(5, n - 1)]
    return WsMessage(channel, Message(dicts[0], dicts[1], dicts[2], dicts[3], buffers), strict, "v1")


def decode_legacy_text(data: bytes | bytearray | memoryview | str) -> WsMessage:
    try:
        obj, strict = loads(data)
    except JSONTextError as exc:
        raise WsFrameError(f"legacy text frame is not JSON: {exc}") from None
    return _from_legacy_json(obj, strict, [], "text")


def decode_legacy_binary(data: bytes | bytearray | memoryview) -> WsMessage:
    view = memoryview(data)
    size = len(view)
    if size < 4:
        raise WsFrameError(f"legacy binary frame of {size} bytes is shorter than its 4-byte part count")
    (nbufs,) = _U32.unpack_from(view, 0)
    if nbufs < 2:
        raise WsFrameError(f"legacy binary nbufs {nbufs} < 2 (a binary frame carries the JSON and >= 1 buffer)")
    if nbufs > MAX_PARTS or 4 * (nbufs + 1) > size:
        raise WsFrameError(
            f"legacy binary nbufs {nbufs} needs a {4 * (nbufs + 1)}-byte offset table; frame is {size} bytes"
        )
    offsets = struct.unpack_from(f">{nbufs}I", view, 4)
    _check_offsets(offsets, 4 * (nbufs + 1), size, "legacy binary")
    ends = [*offsets[1:], size]
    try:
        obj, strict = loads(view[offsets[0] : ends[0]])
    except JSONTextError as exc:
        raise WsFrameError(f"legacy binary JSON part is not JSON: {exc}") from None
    buffers = [bytes(view[offsets[i] : ends[i]]) for i in range(1, nbufs)]
    return _from_legacy_json(obj, strict, buffers, "binary")


def _check_offsets(offsets: tuple[int, ...], first: int, size: int, what: str) -> None:
    if offsets[0] != first:
        raise WsFrameError(f"{what} offsets[0] is {offsets[0]}, expected {first} (end of the offset table)")
    prev = first
    for i, off in enumerate(offsets):
        if off < prev:
            raise WsFrameError(f"{what} offsets decrease at index {i} ({prev} -> {off})")
        if off > size:
            raise WsFrameError(f"{what} offset {i} is {off}, past the end of the {size}-byte frame")
        prev = off


def _channel(raw: bytes) -> Channel:
    try:
        return _CHANNELS[raw.decode("utf-8")]
    except (UnicodeDecodeError, KeyError):
        raise WsFrameError(f"unknown channel {raw[:32]!r}") from None


def _from_legacy_json(obj: Any, strict: bool, buffers: list[bytes], framing: str) -> WsMessage:
    if not isinstance(obj, dict):
        raise WsFrameError(f"legacy {framing} frame is a JSON {type(obj).__name__}, not an object")
    raw_channel = obj.get("channel", "shell")  # the server assumes shell when it is missing
    if not isinstance(raw_channel, str) or raw_channel not in WS_CHANNELS:
        raise WsFrameError(f"unknown channel {raw_channel!r}")
    dicts = []
    for name in _PARTS:
        value = obj.get(name, {} if name != "header" else None)
        if not isinstance(value, dict):
            what = "missing" if value is None else f"a JSON {type(value).__name__}, not an object"
            raise WsFrameError(f"{name} is {what}")
        dicts.append(value)
    return WsMessage(_CHANNELS[raw_channel], Message(dicts[0], dicts[1], dicts[2], dicts[3], buffers), strict, framing)


# ---------------------------------------------------------------- encoding


def encode(msg: Message, channel: Channel | str, protocol: str | None, *, server: bool = False) -> tuple[bytes | str, bool]:
    """Frame a message for a kernel websocket: returns ``(payload, is_text)``.

    v1 is always binary; legacy is a text frame unless the message has buffers.
    ``server=True`` adds the keys jupyter_server writes on legacy frames
    (``msg_id``, ``msg_type``, and ``buffers: []`` on text frames).
    """
    channel = Channel(channel)
    if channel.value not in WS_CHANNELS:
        raise ValueError(f"channel {channel.value!r} is not carried on the kernel websocket")
    if protocol == V1_PROTOCOL:
        return encode_v1(msg, channel), False
    if protocol:
        raise ValueError(f"unknown kernel websocket subprotocol {protocol!r}")
    obj: dict[str, Any] = {
        "header": msg.header,
        "parent_header": msg.parent_header,
        "metadata": msg.metadata,
        "content": msg.content,
        "channel": channel.value,
    }
    if server:
        obj["msg_id"] = msg.msg_id
        obj["msg_type"] = msg.msg_type
    if not msg.buffers:
        obj["buffers"] = []
        return dumps(obj).decode("utf-8"), True
    return encode_legacy_binary(obj, msg.buffers), False


def encode_v1(msg: Message, channel: Channel | str) -> bytes:
    parts = [
        Channel(channel).value.encode("utf-8"),
        orjson.dumps(msg.header),
        orjson.dumps(msg.parent_header),
        orjson.dumps(msg.metadata),
        orjson.dumps(msg.content),
        *[bytes(b) for b in msg.buffers],
    ]
    n = len(parts) + 1
    offsets = [8 * (n + 1)]
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return struct.pack(f"<{n + 1}Q", n, *offsets) + b"".join(parts)


def encode_legacy_binary(obj: dict[str, Any], buffers: list[bytes]) -> bytes:
    parts = [orjson.dumps({k: v for k, v in obj.items() if k != "buffers"}), *[bytes(b) for b in buffers]]
    nbufs = len(parts)
    offsets = [4 * (nbufs + 1)]
    for p in parts[:-1]:
        offsets.append(offsets[-1] + len(p))
    return struct.pack(f">{nbufs + 1}I", nbufs, *offsets) + b"".join(parts)


def preview(data: bytes | bytearray | memoryview | str, limit: int = 48) -> str:
    """Hex of the first bytes of a frame, for parse-error records."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data[:limit])
    return raw[:limit].hex(" ")
