"""The byte stream from the websocket tap's mitmproxy addon to its recorder process. Sans-IO.

The addon (`ws_addon.py`, inside mitmdump) does no decoding: it turns what its
hooks saw into items of this stream and writes each batch to a pipe; the
recorder process (`ws_recorder.py`) feeds what it reads to a `WireDecoder` and
gets the same items back, in order.

An item is a 5-byte head, ``<u32 little-endian body length><u8 kind>``, then
its body:

- ``MESSAGE``: ``<u8 flags><u32 conn><f64 t>`` then the raw websocket payload
  (flags: 1 = from the client, 2 = text frame). This is the hot path: one
  `struct.pack` per message, the payload is never copied by the addon (it is
  handed to ``writev`` as its own piece).
- every other kind: a JSON array (orjson), see `encode_event`:
  ``OPENED [conn, path, protocol, t]``, ``CLOSED [conn, code, reason, closed_by, t]``,
  ``REFUSED [path, status, t]``, ``SECRETS [[credential, ...]]``.

``conn`` numbers the kernel channel websockets of one mitmdump process (1, 2, ...),
so the flow id (36 characters) is not repeated on every message. The stream
carries unredacted data (credentials, raw frames): it only ever goes through an
anonymous pipe between the two processes; redaction happens in the recorder,
before anything is written.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

MESSAGE, OPENED, CLOSED, REFUSED, SECRETS = range(5)
KINDS = (MESSAGE, OPENED, CLOSED, REFUSED, SECRETS)

FROM_CLIENT = 1
IS_TEXT = 2

_HEAD = struct.Struct("<IB")
_MSG_HEAD = struct.Struct("<IBBId")  # head + flags, conn, t
HEAD_SIZE = _HEAD.size
MSG_EXTRA = _MSG_HEAD.size - _HEAD.size
MAX_BODY = (1 << 32) - 1


class WireError(ValueError):
    """The stream is not one the addon wrote (a bug, or a truncated stream); str() is one line."""


def encode_message(conn: int, from_client: bool, is_text: bool, t: float, payload_len: int) -> bytes:
    """The head of a MESSAGE item; the payload follows it as a separate piece."""
    body = MSG_EXTRA + payload_len
    if body > MAX_BODY:
        raise WireError(f"websocket message of {payload_len} bytes is too large for the recorder stream")
    return _MSG_HEAD.pack(body, MESSAGE, (FROM_CLIENT if from_client else 0) | (IS_TEXT if is_text else 0), conn, t)


def encode_event(kind: int, fields: list[Any]) -> bytes:
    """A whole non-message item."""
    if kind not in KINDS or kind == MESSAGE:
        raise WireError(f"unknown item kind {kind!r}")
    body = orjson.dumps(fields)
    return _HEAD.pack(len(body), kind) + body


# Decoded items: (MESSAGE, conn, from_client, is_text, t, payload: bytes) or (kind, *fields)
Item = tuple[Any, ...]


class WireDecoder:
    """Feed it the bytes read from the pipe, in any pieces; it yields whole items."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete item held back (nonzero at end of stream: a truncated stream)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Item]:
        out: list[Item] = []
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= HEAD_SIZE:
                size, kind = _HEAD.unpack_from(buf, pos)
                stop = pos + HEAD_SIZE + size
                if stop > end:
                    break
                if kind == MESSAGE:
                    if size < MSG_EXTRA:
                        raise WireError(f"message item of {size} bytes is shorter than its head")
                    _, _, flags, conn, t = _MSG_HEAD.unpack_from(buf, pos)
                    payload = bytes(view[pos + _MSG_HEAD.size:stop])
                    out.append((MESSAGE, conn, bool(flags & FROM_CLIENT), bool(flags & IS_TEXT), t, payload))
                elif kind in KINDS:
                    try:
                        fields = orjson.loads(view[pos + HEAD_SIZE:stop])
                    except orjson.JSONDecodeError as exc:
                        raise WireError(f"item of kind {kind} is not JSON: {exc}") from None
                    out.append((kind, *fields))
                else:
                    raise WireError(f"unknown item kind {kind} at offset {pos}")
                pos = stop
        finally:
            view.release()
            del buf[:pos]
        return out
