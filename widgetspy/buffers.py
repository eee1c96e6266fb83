"""Widget `buffer_paths`: put binary buffers back into a state, or take them out.

`buffer_paths[i]` is a list of dict keys (str) and list indices (int) that says
where `buffers[i]` belongs in the state. A key path's last element is absent
from the JSON state; a list index's slot is ``null``. Sans-IO.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence


class BufferPathError(ValueError):
    """A buffer path that does not resolve in the state."""


def put_buffers(
    state: dict[str, Any],
    paths: Sequence[Sequence[Any]],
    buffers: Sequence[bytes],
    *,
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """A copy of `state` with each buffer placed at its path.

    Raises BufferPathError on the first path that does not resolve, unless
    `errors` is a list: then each bad path is skipped and described there
    (one line each), and so is a count mismatch between paths and buffers.
    """
    if errors is not None and paths is not None and len(paths) != len(buffers):
        errors.append(f"{len(paths)} buffer path(s) but {len(buffers)} buffer(s)")
    if not paths:
        return state
    state = copy.copy(state)
    for path, buf in zip(paths, buffers):
        try:
            _put_one(state, path, buf)
        except BufferPathError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return state


def _put_one(state: dict[str, Any], path: Any, buf: bytes) -> None:
    if not isinstance(path, (list, tuple)) or not path:
        raise BufferPathError(f"buffer path {path!r} is not a non-empty list")
    # Walk first, copy afterwards: a path that fails half-way changes nothing.
    obj: Any = state
    for i, key in enumerate(path[:-1]):
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            raise BufferPathError(f"buffer path {list(path)!r}: {list(path[: i + 1])!r} does not exist") from None
        if not isinstance(obj, (dict, list)):
            raise BufferPathError(f"buffer path {list(path)!r}: {list(path[: i + 1])!r} is not a dict or list")
    last = path[-1]
    if isinstance(obj, list) and not (isinstance(last, int) and -len(obj) <= last < len(obj)):
        raise BufferPathError(f"buffer path {list(path)!r} does not resolve")
    obj = state
    for key in path[:-1]:
        child = copy.copy(obj[key])  # never change the caller's nested objects
        obj[key] = child
        obj = child
    obj[last] = buf


def remove_buffers(state: dict[str, Any]) -> tuple[dict[str, Any], list[list[Any]], list[bytes]]:
    """Split binary values out of a state: (json_state, buffer_paths, buffers).

    Depth first over dicts and lists, like ipywidgets: a binary dict value is
    removed, a binary list item becomes None.
    """
    paths: list[list[Any]] = []
    buffers: list[bytes] = []

    def walk(obj: Any, path: list[Any]) -> Any:
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if isinstance(v, (bytes, bytearray, memoryview)):
                    paths.append([*path, k])
                    buffers.append(bytes(v))
                else:
                    out[k] = walk(v, [*path, k])
            return out
        if isinstance(obj, (list, tuple)):
            items = []
            for i, v in enumerate(obj):
                if isinstance(v, (bytes, bytearray, memoryview)):
                    paths.append([*path, i])
                    buffers.append(bytes(v))
                    items.append(None)
                else:
                    items.append(walk(v, [*path, i]))
            return items
        return obj

    return walk(state, []), paths, buffers
