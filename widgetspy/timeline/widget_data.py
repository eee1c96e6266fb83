"""Reading the state out of widget comm payloads, binary buffers put back.

- comm_open / update / echo_update: `data.state` + `data.buffer_paths`, the
  message's buffers in order;
- update_states (control comm): `data.states` maps model id to
  `{model_name, model_module, model_module_version, state}`; ipywidgets writes
  its buffer paths as `[model_id, "state", ...]` (relative to `states`). The
  protocol document's form `[model_id, ...]` (without "state") is accepted too.
"""

from __future__ import annotations

from typing import Any

from ..buffers import put_buffers
from ..message import Message


def widget_state(msg: Message, problems: list[str]) -> dict[str, Any] | None:
    """`data.state` with buffers in place, or None when there is no state dict."""
    data = msg.comm_data
    state = data.get("state")
    if not isinstance(state, dict):
        return None
    paths = data.get("buffer_paths") or []
    if not isinstance(paths, list):
        problems.append(f"buffer_paths is {type(paths).__name__}, not a list")
        return state
    if not paths and not msg.buffers:
        return state
    return put_buffers(state, paths, msg.buffers, errors=problems)


def update_states(msg: Message, problems: list[str]) -> dict[str, dict[str, Any]]:
    """model id -> full state (buffers in place) of an `update_states` message."""
    data = msg.comm_data
    states = data.get("states")
    if not isinstance(states, dict):
        problems.append("update_states without a states dict")
        return {}
    paths = data.get("buffer_paths") or []
    if not isinstance(paths, list):
        problems.append(f"buffer_paths is {type(paths).__name__}, not a list")
        paths = []
    fixed = []
    for path in paths:
        if (
            isinstance(path, list)
            and len(path) >= 2
            and path[1] != "state"
            and isinstance(states.get(path[0]), dict)
            and "state" in states[path[0]]
        ):
            path = [path[0], "state", *path[1:]]  # the messages.md form, without "state"
        fixed.append(path)
    if fixed or msg.buffers:
        states = put_buffers(states, fixed, msg.buffers, errors=problems)
    out: dict[str, dict[str, Any]] = {}
    for model_id, entry in states.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("state"), dict):
            problems.append(f"update_states entry {model_id!r} has no state dict")
            continue
        state = dict(entry["state"])
        # the identity keys also travel beside the state; fill them in if the state lacks them
        for outer, inner in (
            ("model_name", "_model_name"),
            ("model_module", "_model_module"),
            ("model_module_version", "_model_module_version"),
        ):
            if inner not in state and isinstance(entry.get(outer), str):
                state[inner] = entry[outer]
        out[model_id] = state
    return out
