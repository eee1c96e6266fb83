"""The Jupyter wire protocol over ZeroMQ: multipart frames -> Message.

A message on the wire is ``[identities..., b"<IDS|MSG>", signature, header,
parent_header, metadata, content, buffers...]``. On IOPub the single identity
frame is the topic. The signature is checked by the peers, never by us, and is
never kept: a recording must not carry anything derived from the kernel key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..message import Message
from .jsontext import JSONTextError, loads_object

DELIM = b"<IDS|MSG>"
_PARTS = ("header", "parent_header", "metadata", "content")


class FrameError(ValueError):
    """Frames that do not form a Jupyter message; the text says why."""


@dataclass(slots=True)
class WireMessage:
    """A parsed multipart message and what surrounded it on the wire."""

    identities: list[bytes]
    message: Message
    strict_json: bool  # False: the JSON held NaN/Infinity (see codec.jsontext)


def parse_frames(frames: Sequence[bytes | memoryview]) -> WireMessage:
    """Split and decode one multipart message. Raises FrameError."""
    try:
        idx = next(i for i, f in enumerate(frames) if bytes(f) == DELIM)
    except StopIteration:
        raise FrameError("no <IDS|MSG> delimiter frame") from None
    rest = frames[idx + 1 :]
    if len(rest) < 5:
        raise FrameError(f"{len(rest)} frames after the delimiter, need at least 5")
    dicts = []
    strict = True
    for name, frame in zip(_PARTS, rest[1:5]):
        try:
            value, ok = loads_object(frame, name)
        except JSONTextError as exc:
            raise FrameError(str(exc)) from None
        strict = strict and ok
        dicts.append(value)
    buffers = [bytes(b) for b in rest[5:]]
    msg = Message(dicts[0], dicts[1], dicts[2], dicts[3], buffers)
    return WireMessage([bytes(f) for f in frames[:idx]], msg, strict)


def preview(frames: Sequence[bytes | memoryview], limit: int = 48) -> str:
    """A short hex preview of the start of the frames, for parse-error lines."""
    head = b"|".join(bytes(f)[:limit] for f in frames[:4])[:limit]
    return head.hex(" ")


def peer_label(identity: bytes) -> str:
    """A printable label for a ZMQ routing identity or IOPub topic."""
    try:
        text = identity.decode("ascii")
    except UnicodeDecodeError:
        return identity.hex()
    return text if text.isprintable() else identity.hex()
