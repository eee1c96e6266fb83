"""Small helpers the rules share: reading comm payloads without trusting them."""

from __future__ import annotations

from typing import Any

from ...message import IPY_MODEL_PREFIX


def content(rec: Any) -> dict[str, Any]:
    c = rec.msg.content
    return c if c.__class__ is dict else {}


def data(rec: Any) -> dict[str, Any]:
    c = rec.msg.content
    d = c.get("data") if c.__class__ is dict else None
    return d if d.__class__ is dict else {}


def comm_id(rec: Any) -> str | None:
    c = rec.msg.content
    cid = c.get("comm_id") if c.__class__ is dict else None
    return cid if cid.__class__ is str else None


def parent_id(rec: Any) -> str | None:
    p = rec.msg.parent_header
    return p.get("msg_id") if p.__class__ is dict else None


def msg_id(rec: Any) -> str:
    return rec.msg.header.get("msg_id") or f"@{rec.seq}"


def major(version: Any) -> str | None:
    if not isinstance(version, str) or not version:
        return None
    return version.split(".", 1)[0].lstrip("^~=v ")


def version_tuple(version: Any) -> tuple[int, ...] | None:
    if not isinstance(version, str):
        return None
    out = []
    for part in version.lstrip("^~=v ").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out) or None


def iter_refs(value: Any, path: tuple = ()):
    """(path, model id) for each IPY_MODEL_ string inside a JSON value."""
    cls = value.__class__
    if cls is str:
        if value.startswith(IPY_MODEL_PREFIX):
            yield path, value[10:]
    elif cls is list:
        for i, v in enumerate(value):
            c = v.__class__
            if c is str or c is list or c is dict:
                yield from iter_refs(v, (*path, i))
    elif cls is dict:
        for k, v in value.items():
            c = v.__class__
            if c is str or c is list or c is dict:
                yield from iter_refs(v, (*path, k))


def label(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def short(value: Any, width: int = 40) -> str:
    import json

    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def json_size(value: Any) -> int:
    """Bytes a value takes on the wire: buffers by length, the rest as compact JSON."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    import orjson

    try:
        return len(orjson.dumps(value))
    except (TypeError, ValueError):
        return len(repr(value))
