"""Oracle: run a widget notebook with nbclient through a recording wrapper kernel,
then compare nbclient's stored widget state (nb.metadata.widgets) and the live
kernel's own state with what the timeline rebuilds from the recording.

One notebook run (one kernel) for the whole module.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient

from widgetspy.cli import cli
from widgetspy.message import STATE_MIMETYPE
from widgetspy.session import read_session
from widgetspy.timeline import ChangeKind, Side, Timeline, state_document, validation_errors

from timeline_oracles import BLOB_CLASS, KERNEL_STATE_CODE, diff, kernel_states, stored_states

pytestmark = pytest.mark.kernel
KERNEL_NAME = "python3-widgetspy-timeline"

CELLS = [
    # sliders and text
    "import ipywidgets as W\n"
    "s = W.IntSlider(value=3, max=10, description='x')\n"
    "f = W.FloatSlider(value=0.5, step=0.25)\n"
    "t = W.Text(value='hello')\n"
    "display(s, f)",
    # Box / HBox / VBox nesting
    "box = W.VBox([W.HBox([s, t]), W.Box([f])])\ndisplay(box)\nt.value = 'hello, world'",
    # Dropdown
    "d = W.Dropdown(options=['a', 'b', 'c'], value='b')\ndisplay(d)\nd.value = 'c'",
    # jslink (a LinkModel) and link (kernel-side, traitlets)
    "p = W.IntProgress(max=10)\njl = W.jslink((s, 'value'), (p, 'value'))\n"
    "k = W.IntText()\nkl = W.link((s, 'value'), (k, 'value'))\ns.value = 7\ndisplay(p, k)",
    # Output widget: nbclient captures into it and syncs `outputs` to the kernel
    "out = W.Output()\ndisplay(out)\nwith out:\n    print('inside the output')\n"
    "    display(W.Button(description='in out'))",
    # Image with bytes, then new bytes
    "img = W.Image(value=b'\\x89PNG\\r\\n\\x1a\\nAB', format='png')\ndisplay(img)\n"
    "img.value = b'\\x89PNG\\r\\n\\x1a\\nXYZ'",
    # a custom DOMWidget with nested buffer paths
    BLOB_CLASS + "blob = Blob(data={'x': {'ar': b'AB', 'shape': [2]}, 'k': 1}, lst=[b'C', 2, b'DE'])\n"
    "display(blob)\nblob.data = {'x': {'ar': b'XYZ', 'shape': [3]}, 'k': 2}",
    # a widget that is closed
    "gone = W.Button(description='closed')\ndisplay(gone)\ngone_id = gone.model_id\ngone.close()",
    # the kernel's own view of every live widget (ground truth for the kernel projection)
    KERNEL_STATE_CODE,
]


@pytest.fixture(scope="module")
def run(jupyter_dirs, tmp_path_factory):
    recordings = tmp_path_factory.mktemp("nbclient-recordings")
    subprocess.run(
        [sys.executable, "-m", "widgetspy", "kernelspec", "install", "--kernel", "python3", "--name", KERNEL_NAME,
         "--recordings", str(recordings)],
        check=True, capture_output=True, text=True,
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60, startup_timeout=60).execute()
    (session,) = sorted(Path(recordings).glob("*.jsonl"))
    _header, records, warnings = read_session(session)
    assert warnings == []
    tl = Timeline().feed_all(records)
    stdout = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    return {"nb": nb, "session": session, "timeline": tl, "kernel": kernel_states(stdout)}


def test_the_notebook_ran_and_was_recorded(run):
    tl = run["timeline"]
    names = {m.model_name for m in tl.models}
    assert {"IntSliderModel", "FloatSliderModel", "TextModel", "HBoxModel", "VBoxModel", "BoxModel",
            "DropdownModel", "LinkModel", "IntProgressModel", "IntTextModel", "OutputModel", "ButtonModel",
            "ImageModel", "BlobModel"} <= names
    assert len(tl.epochs) == 1 and tl.epochs[0].end_reason == "kernel_exited"
    assert [p for p in tl.problems if "never processed" not in p.text] == []


@pytest.mark.parametrize("side", [Side.FRONTEND, Side.KERNEL])
def test_equal_to_nbclient_stored_state_for_every_open_model(run, side):
    """nbclient's metadata.widgets == the timeline's state at the end, per model.

    Known difference: nbclient ignores comm_close, so it keeps the closed Button;
    the timeline leaves closed models out of the state (their last state is still
    equal to nbclient's)."""
    tl = run["timeline"]
    stored = stored_states(run["nb"].metadata.widgets[STATE_MIMETYPE])
    ours = {mid: s for mid, (_m, s) in tl.states(at=tl.final_seq(), side=side).items()}
    closed = {mid for mid in stored if tl.model(mid) and tl.model(mid).closed_by == "kernel"}
    assert len(closed) == 1 and tl.model(closed.pop()).model_name == "ButtonModel"
    assert set(stored) - set(ours) == {m.comm_id for m in tl.models if m.closed_by == "kernel"}
    assert set(ours) <= set(stored)
    for mid, state in ours.items():
        assert state == stored[mid], (tl.model(mid).model_name, diff(state, stored[mid]))
    for mid in set(stored) - set(ours):  # closed models: same last state
        assert tl.state(mid, side=side) == stored[mid]


def test_kernel_projection_equals_the_live_kernels_get_state(run):
    tl = run["timeline"]
    live = run["kernel"]
    ours = {mid: s for mid, (_m, s) in tl.states(at=tl.final_seq(), side=Side.KERNEL).items()}
    assert set(ours) == set(live)
    for mid, state in ours.items():
        assert state == live[mid], (tl.model(mid).model_name, diff(state, live[mid]))


def test_binary_and_nested_buffers_and_output(run):
    tl = run["timeline"]
    (img,) = tl.find("Image")
    assert tl.state(img.comm_id)["value"] == b"\x89PNG\r\n\x1a\nXYZ"
    (blob,) = tl.find("Blob")
    state = tl.state(blob.comm_id, side=Side.FRONTEND)
    assert state["data"] == {"x": {"ar": b"XYZ", "shape": [3]}, "k": 2} and state["lst"] == [b"C", 2, b"DE"]
    doc = state_document({blob.comm_id: state})
    assert validation_errors(doc) == []
    assert [b["path"] for b in doc["state"][blob.comm_id]["buffers"]] == [["data", "x", "ar"], ["lst", 0], ["lst", 2]]
    (out,) = tl.find("Output")
    outputs = tl.state(out.comm_id, side=Side.KERNEL)["outputs"]
    assert outputs[0]["text"] == "inside the output\n" and outputs[1]["output_type"] == "display_data"
    # nbclient's own `outputs` update was the cause of the kernel-side change
    kernel_changes = tl.changes(model_id=out.comm_id, key="outputs", side=Side.KERNEL)
    assert any(c.cause and c.cause.msg_type == "comm_msg" and c.cause.method == "update" for c in kernel_changes)


def test_links_references_and_views(run):
    tl = run["timeline"]
    (s,) = tl.find("IntSlider")
    (p,) = tl.find("IntProgress")
    (link,) = tl.find("Link")
    refs = {(r.source, r.label, r.target) for r in tl.references(at=tl.final_seq())}
    assert (link.comm_id, "source[0]", s.comm_id) in refs and (link.comm_id, "target[0]", p.comm_id) in refs
    (hbox,) = tl.find("HBox")
    assert (hbox.comm_id, "children[0]", s.comm_id) in refs
    # traitlets.link: the kernel changed IntText because s.value changed, in the same cell
    (k,) = tl.find("IntText")
    updates = [c for c in tl.changes(model_id=k.comm_id, key="value") if c.kind is ChangeKind.UPDATE]
    assert [c.key("value").new for c in updates] == [3, 7]  # link() copies s.value first, then follows it
    assert all(c.cause.msg_type == "execute_request" and "W.link(" in c.cause.code for c in updates)
    assert [v.cause.code.splitlines()[0] for v in s.views] == ["import ipywidgets as W"]


def test_commands_on_the_recording(run):
    path = str(run["session"])
    runner = CliRunner()
    res = runner.invoke(cli, ["models", path])
    assert res.exit_code == 0, res.output
    assert "VBoxModel" in res.output and "children[0]" in res.output
    res = runner.invoke(cli, ["state", path, "--side", "frontend"])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.output)
    assert validation_errors(doc) == []
    stored = run["nb"].metadata.widgets[STATE_MIMETYPE]["state"]
    assert set(doc["state"]) < set(stored)
    res = runner.invoke(cli, ["timeline", path, "--name", "Dropdown", "--key", "index", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["keys"][0]["new"] for x in lines if x["kind"] == "update"] == [2]  # Dropdown syncs index, not value
