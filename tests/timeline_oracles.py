"""Helpers shared by the real-kernel timeline oracle tests."""

from __future__ import annotations

import json
from typing import Any

from widgetspy.timeline import decode_entry_state

# Printed by a cell (or a FrontendClient execute) after the recorded story: the kernel's
# own idea of every live widget, via ipywidgets' Widget.get_manager_state.
KERNEL_STATE_CODE = (
    "import json as _json, ipywidgets as _W\n"
    "print('@@STATE@@' + _json.dumps(_W.Widget.get_manager_state(drop_defaults=False)))\n"
)

# A custom DOMWidget whose state holds binary values nested in a dict and a list.
BLOB_CLASS = """
from traitlets import Dict, List, Unicode
class Blob(W.DOMWidget):
    _model_name = Unicode('BlobModel').tag(sync=True)
    _model_module = Unicode('blob-widget').tag(sync=True)
    _model_module_version = Unicode('0.1.0').tag(sync=True)
    _view_name = Unicode('BlobView').tag(sync=True)
    _view_module = Unicode('blob-widget').tag(sync=True)
    _view_module_version = Unicode('0.1.0').tag(sync=True)
    data = Dict().tag(sync=True)
    lst = List().tag(sync=True)
"""


def kernel_states(stdout: str) -> dict[str, dict[str, Any]]:
    """model id -> state (bytes put back) from KERNEL_STATE_CODE's output."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("@@STATE@@"))
    doc = json.loads(line.removeprefix("@@STATE@@"))
    return {mid: decode_entry_state(entry) for mid, entry in doc["state"].items()}


def stored_states(manager_state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """model id -> state (bytes put back) of a widget-state document."""
    return {mid: decode_entry_state(entry) for mid, entry in manager_state["state"].items()}


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (a's value, b's value) where they differ (for readable failures)."""
    return {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
