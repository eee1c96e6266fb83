"""The message model: one Jupyter message, its channel and its direction.

This is the bottom layer of widgetspy. Everything above (codecs, the session
format, the timeline, inspectors, replay, proxies) speaks in these types.
Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

WIDGET_TARGET = "jupyter.widget"
CONTROL_TARGET = "jupyter.widget.control"
VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"
STATE_MIMETYPE = "application/vnd.jupyter.widget-state+json"
IPY_MODEL_PREFIX = "IPY_MODEL_"

COMM_MSG_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})


class Channel(enum.StrEnum):
    SHELL = "shell"
    IOPUB = "iopub"
    STDIN = "stdin"
    CONTROL = "control"
    HB = "hb"


class Direction(enum.StrEnum):
    """Which way a message travelled through the tap."""

    TO_KERNEL = "to_kernel"
    TO_FRONTEND = "to_frontend"

    @property
    def arrow(self) -> str:
        return "→K" if self is Direction.TO_KERNEL else "→F"


@dataclass(slots=True)
class Message:
    """A Jupyter message as the protocol defines it (no signature, no identities)."""

    header: dict[str, Any]
    parent_header: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)

    @property
    def msg_id(self) -> str | None:
        return self.header.get("msg_id")

    @property
    def msg_type(self) -> str:
        return self.header.get("msg_type") or ""

    @property
    def session(self) -> str | None:
        return self.header.get("session")

    @property
    def parent_id(self) -> str | None:
        return self.parent_header.get("msg_id") if isinstance(self.parent_header, dict) else None

    @property
    def parent_type(self) -> str | None:
        return self.parent_header.get("msg_type") if isinstance(self.parent_header, dict) else None

    @property
    def is_comm(self) -> bool:
        return self.msg_type in COMM_MSG_TYPES

    @property
    def comm_id(self) -> str | None:
        if not isinstance(self.content, dict):
            return None
        cid = self.content.get("comm_id")
        return cid if isinstance(cid, str) else None

    @property
    def comm_data(self) -> dict[str, Any]:
        """`content.data` of a comm message, or {} when absent or not a dict."""
        data = self.content.get("data") if isinstance(self.content, dict) else None
        return data if isinstance(data, dict) else {}

    @property
    def comm_method(self) -> str | None:
        """`data.method` of a widget comm_msg (update, echo_update, custom, ...)."""
        method = self.comm_data.get("method")
        return method if isinstance(method, str) else None

    def to_dict(self) -> dict[str, Any]:
        """The message in jupyter_client's dict form (without buffers)."""
        return {
            "header": self.header,
            "parent_header": self.parent_header,
            "metadata": self.metadata,
            "content": self.content,
        }


def widget_view_model_id(msg: Message) -> str | None:
    """The model id a display_data/execute_result/update_display_data shows, if any."""
    if msg.msg_type not in ("display_data", "execute_result", "update_display_data"):
        return None
    data = msg.content.get("data") if isinstance(msg.content, dict) else None
    if not isinstance(data, dict):
        return None
    view = data.get(VIEW_MIMETYPE)
    if isinstance(view, dict) and isinstance(view.get("model_id"), str):
        return view["model_id"]
    return None
