"""Widget notebooks for tests, and a way to compare the widget state nbclient saves."""

from __future__ import annotations

from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

WIDGET_CELLS = [
    "import ipywidgets as W\ns = W.IntSlider(value=3, description='x')\nt = W.Text(value='hi')\nW.HBox([s, t])",
    "d = W.Dropdown(options=['a', 'b', 'c'], value='b')\nv = W.VBox([d, W.HBox([W.Checkbox(value=True)])])\nv",
    "p = W.IntProgress(max=100)\nl = W.jslink((s, 'value'), (p, 'value'))\nk = W.link((s, 'max'), (p, 'max'))\np",
    "s.value = 42\nt.value = 'changed'",
    "img = W.Image(value=b'\\x89PNG\\r\\n\\x1a\\n' + bytes(range(256)), format='png')\nimg",
    "out = W.Output()\nwith out:\n    print('captured')\nout",
    "gone = W.Button(description='bye')\ngone.close()",
]


def widget_notebook() -> nbformat.NotebookNode:
    return new_notebook(cells=[new_code_cell(src) for src in WIDGET_CELLS])


def _canonical(nb: nbformat.NotebookNode, value: Any) -> Any:
    """`value` with model ids replaced by their open order in nb's widget state,
    so two runs (whose ids are random) can be compared."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    order = {mid: i for i, mid in enumerate(state)}

    def canon(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("IPY_MODEL_"):
            return f"IPY_MODEL_#{order.get(value[10:], '?')}"
        if isinstance(value, dict):
            return {k: (f"#{order.get(v, '?')}" if k == "model_id" else canon(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    return canon(value)


def canonical_widget_state(nb: nbformat.NotebookNode) -> list[tuple[str, Any]]:
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [(entry["model_name"], _canonical(nb, entry)) for entry in state.values()]


def canonical_outputs(nb: nbformat.NotebookNode) -> list[Any]:
    return _canonical(nb, [cell.outputs for cell in nb.cells])
