"""JSON for messages: orjson for speed, stdlib json as the fallback for the
non-standard tokens (NaN, Infinity) that a buggy peer may still send.

A message parsed through the fallback is marked, so it is written back with
the same tokens instead of being silently turned into ``null``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class JSONTextError(ValueError):
    """Bytes that are not a JSON document (or not UTF-8)."""


def loads(data: bytes | bytearray | memoryview | str) -> tuple[Any, bool]:
    """Parse JSON; return ``(value, strict)``.

    ``strict`` is False when the text needed the stdlib fallback, i.e. it holds
    NaN or +/-Infinity, which the Jupyter protocol forbids.
    """
    try:
        return orjson.loads(data), True
    except orjson.JSONDecodeError:
        pass
    try:
        if not isinstance(data, str):
            data = bytes(data).decode("utf-8")
        return json.loads(data), False
    except (UnicodeDecodeError, ValueError) as exc:
        raise JSONTextError(_short(exc)) from None


def loads_object(data: bytes | bytearray | memoryview | str, name: str) -> tuple[dict[str, Any], bool]:
    """`loads` for a message part that must be a JSON object; the error names `name`."""
    try:
        value, strict = loads(data)
    except JSONTextError as exc:
        raise JSONTextError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JSONTextError(f"{name} is a JSON {type(value).__name__}, not an object")
    return value, strict


def dumps(value: Any, strict: bool = True) -> bytes:
    """Serialize compactly; ``strict=False`` keeps NaN/Infinity tokens."""
    if strict:
        return orjson.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
