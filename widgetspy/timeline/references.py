"""The reference graph: `IPY_MODEL_<id>` strings inside model states.

A reference can sit anywhere in a state: a top-level value (`layout`), a list
item (`children[2]`), a dict value, or a Link's `source: ["IPY_MODEL_x", "value"]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..message import IPY_MODEL_PREFIX


@dataclass(frozen=True, slots=True)
class Reference:
    source: str  # model id holding the reference
    path: tuple[str | int, ...]  # where in the source's state
    target: str  # model id referenced
    resolved: bool  # the target is open on that side at that point

    @property
    def label(self) -> str:
        """`children[0]`, `layout`, `source[0]`."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out


def find_references(state: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, target id) for every IPY_MODEL_ string in a state, depth first."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((k,), v) for k, v in reversed(list(state.items()))]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if value.startswith(IPY_MODEL_PREFIX):
                yield path, value[len(IPY_MODEL_PREFIX) :]
        elif isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
