"""The comm/model registry: every comm seen, its lifetime on each side, and
for widget models the two current states (kernel view, front-end view).

Plain mutable records owned by the `Timeline`; the rules that change them
live in `timeline.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .changes import Change, CustomMessage, Side, View

KERNEL_OPENED = "kernel"
FRONTEND_OPENED = "frontend"
ADOPTED = "adopted"  # first seen in a comm_msg / update_states, never saw its comm_open


@dataclass(slots=True, eq=False)
class Comm:
    """A comm on any target (jupyter.widget, jupyter.widget.control, others)."""

    comm_id: str
    target_name: str
    epoch: int
    opened_by: str  # kernel | frontend | adopted
    open_msg_seq: int  # seq of the comm_open (or first message) on the wire
    open_t: float
    opened: dict[Side, int] = field(default_factory=dict)  # side -> seq it knew of the comm
    closed: dict[Side, int] = field(default_factory=dict)  # side -> seq it closed there
    closed_by: str | None = None  # kernel | frontend | kernel_restarted | kernel_exited | new kernel session
    close_msg_seq: int | None = None

    def open_at(self, seq: int | None, side: Side) -> bool:
        """Open on `side` at `seq` (None: now)."""
        opened = self.opened.get(side)
        if opened is None or (seq is not None and opened > seq):
            return False
        closed = self.closed.get(side)
        return closed is None or (seq is not None and closed > seq)

    def existed_at(self, seq: int | None, side: Side) -> bool:
        opened = self.opened.get(side)
        return opened is not None and (seq is None or opened <= seq)

    @property
    def is_closed(self) -> bool:
        return self.closed_by is not None


@dataclass(slots=True, eq=False)
class Model(Comm):
    """A `jupyter.widget` comm: a widget model."""

    model_name: str | None = None
    model_module: str | None = None
    model_module_version: str | None = None
    view_name: str | None = None
    view_module: str | None = None
    state: dict[Side, dict[str, Any]] = field(default_factory=lambda: {Side.KERNEL: {}, Side.FRONTEND: {}})
    changes: list[Change] = field(default_factory=list)  # empty when the timeline keeps no history
    change_count: int = 0
    update_count: dict[str, int] = field(default_factory=dict)  # method -> messages
    views: list[View] = field(default_factory=list)
    custom: list[CustomMessage] = field(default_factory=list)
    # front-end echo filter: key -> msg_id of the latest front-end update that set it
    expected_echo: dict[str, str] = field(default_factory=dict)

    @property
    def class_name(self) -> str:
        return self.model_name or "?"

    @property
    def short_id(self) -> str:
        return self.comm_id[:8]

    def count_message(self, method: str | None) -> None:
        """One more comm_msg of this `data.method` (None: "?")."""
        key = method or "?"
        self.update_count[key] = self.update_count.get(key, 0) + 1

    def learn_class(self, state: dict[str, Any]) -> None:
        """Take the identity keys from a state (they are immutable; first wins)."""
        if self.view_module is not None or "_model_name" not in state:
            return  # known already, or a partial update without the identity keys
        for attr, key in (
            ("model_name", "_model_name"),
            ("model_module", "_model_module"),
            ("model_module_version", "_model_module_version"),
            ("view_name", "_view_name"),
            ("view_module", "_view_module"),
        ):
            value = state.get(key)
            if getattr(self, attr) is None and isinstance(value, str):
                setattr(self, attr, value)

    def matches_name(self, name: str) -> bool:
        """`IntSlider` and `IntSliderModel` both match an IntSliderModel."""
        mine = self.model_name or ""
        return name in (mine, mine.removesuffix("Model"))
