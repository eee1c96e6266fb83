"""Oracle: drive a real kernel behind `widgetspy record` the way a browser does
(FrontendClient), then compare the timeline's two projections with the live
kernel's own state (asked after the story, before the restart and before the
shutdown) and with the driving front-end's own view.

One recording (one kernel, restarted once) for the whole module.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from widgetspy.cli import cli
from widgetspy.frontend import FrontendClient
from widgetspy.proxy.process import RecorderProcess
from widgetspy.session import read_session
from widgetspy.timeline import ChangeKind, Side, Timeline, validation_errors

from timeline_oracles import KERNEL_STATE_CODE, diff, kernel_states

pytestmark = pytest.mark.kernel

BUTTON = {
    "_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0", "_model_name": "ButtonModel",
    "_view_module": "@jupyter-widgets/controls", "_view_module_version": "2.0.0", "_view_name": "ButtonView",
}


@pytest.fixture(scope="module")
def story(jupyter_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("timeline-fe") / "session.jsonl"
    ids: dict[str, str] = {}
    with RecorderProcess(out) as rec:
        with FrontendClient(str(rec.connection_file)) as fe:
            fe.execute("import ipywidgets as W\ns = W.IntSlider(value=3, max=10)\nt = W.Text('a')\n"
                       "box = W.HBox([s, t])\ndisplay(box)")
            ids["slider"] = slider = fe.find("IntSliderModel")[0]
            for v in (4, 5, 6):
                fe.update(slider, {"value": v})  # a drag
            fe.update(slider, {"value": 1000})  # the kernel clamps it to 10
            fe.execute("t.value = 'from the kernel'")
            fe.request_state(slider)
            fe.execute("img = W.Image(value=b'AB', format='png')\ndisplay(img)\n"
                       "img.send({'hello': 1}, buffers=[b'abc'])")
            ids["image"] = img = fe.find("ImageModel")[0]
            fe.update(img, {"value": b"XYZ"})
            # a widget created by the front-end: comm_open with the identity keys, then an update
            ids["fe_button"], _ = fe.comm_open("jupyter.widget", {"state": BUTTON, "buffer_paths": []},
                                               metadata={"version": "2.1.0"})
            fe.update(ids["fe_button"], {"description": "made by the front-end"})
            # the front-end closes a comm; the kernel keeps the widget and still sends on it
            fe.execute("d = W.Dropdown(options=['x', 'y'])")
            ids["dropdown"] = dd = fe.find("DropdownModel")[0]
            fe.comm_close(dd)
            fe.execute("d.index = 1")
            # what a reloaded page asks: every state at once on the control comm
            control, _ = fe.comm_open("jupyter.widget.control", {}, metadata={"version": "1.0.0"})
            first = fe.comm_msg(control, {"method": "request_states"})
            if not any(m["content"]["data"].get("method") == "update_states" for m in first.of_type("comm_msg")):
                # ipywidgets 8.1 creates the front-end-made Button's default Layout/Style while it
                # iterates over its widgets ("dictionary changed size during iteration"): ask again
                fe.comm_msg(control, {"method": "request_states"})
            kernel0 = kernel_states(fe.execute(KERNEL_STATE_CODE).stdout)
            frontend0 = {cid: dict(state) for cid, state in fe.models.items()}
            fe.shutdown(restart=True)
            fe.kc.wait_for_ready(timeout=60)
            fe.execute("import ipywidgets as W\nn = W.IntSlider(value=42)\nn.value = 43")
            kernel1 = kernel_states(fe.execute(KERNEL_STATE_CODE).stdout)
            fe.shutdown()
        assert rec.wait() == 0
    _header, records, warnings = read_session(out)
    assert warnings == []
    return {"path": out, "timeline": Timeline().feed_all(records), "ids": ids, "kernel0": kernel0,
            "kernel1": kernel1, "frontend0": frontend0}


def end_of_epoch(tl: Timeline, index: int) -> int:
    return tl.epochs[index].end_seq - 1


def test_two_epochs_and_restart_closes_the_old_models(story):
    tl = story["timeline"]
    assert len(tl.epochs) == 2
    assert tl.epochs[0].end_reason in ("kernel_restarted", "new kernel session")
    assert tl.epochs[0].kernel_session != tl.epochs[1].kernel_session
    old = [m for m in tl.models if m.epoch == 0]
    assert old and all(m.closed_by for m in old)
    assert {m.model_name for m in tl.models if m.epoch == 1} >= {"IntSliderModel"}


def test_kernel_projection_equals_kernel_get_state_before_the_restart(story):
    tl, ids, live = story["timeline"], story["ids"], story["kernel0"]
    at = end_of_epoch(tl, 0)
    ours = {mid: s for mid, (_m, s) in tl.states(at=at, side=Side.KERNEL).items()}
    # the front-end closed the Dropdown's comm; the kernel keeps the widget (and its later change)
    assert set(live) - set(ours) == {ids["dropdown"]}
    assert set(ours) == set(live) - {ids["dropdown"]}
    for mid, state in ours.items():
        assert state == live[mid], (tl.model(mid).model_name, diff(state, live[mid]))
    assert tl.state(ids["dropdown"], at=at, side=Side.KERNEL) == live[ids["dropdown"]]
    assert live[ids["slider"]]["value"] == 10 and live[ids["image"]]["value"] == b"XYZ"


def test_kernel_projection_equals_kernel_get_state_after_the_restart(story):
    tl, live = story["timeline"], story["kernel1"]
    ours = {mid: s for mid, (_m, s) in tl.states(at=tl.final_seq(), side=Side.KERNEL).items()}
    assert set(ours) == set(live)
    for mid, state in ours.items():
        assert state == live[mid], (tl.model(mid).model_name, diff(state, live[mid]))


def test_frontend_projection_equals_the_driving_frontends_view(story):
    tl, mine = story["timeline"], story["frontend0"]
    ours = {mid: s for mid, (_m, s) in tl.states(at=end_of_epoch(tl, 0), side=Side.FRONTEND).items()}
    assert set(mine) <= set(ours)
    for mid, state in mine.items():
        assert ours[mid] == state, (tl.model(mid).model_name, diff(ours[mid], state))
    # the front-end dropped the Dropdown when it closed it; the kernel view did not see d.index = 1 undone
    assert story["ids"]["dropdown"] not in ours


def test_echo_then_corrective_update_on_a_real_kernel(story):
    tl, slider = story["timeline"], story["ids"]["slider"]
    sent = [c for c in tl.changes(model_id=slider, key="value", side=Side.FRONTEND)
            if c.kind is ChangeKind.UPDATE and c.direction.value == "to_kernel"]
    assert [c.key("value").new for c in sent] == [4, 5, 6, 1000]
    big = sent[-1]
    after = tl.changes(model_id=slider, since=big.seq, key="value")
    kinds = [(c.kind, tuple(s.value for s in c.sides)) for c in after]
    assert kinds[:3] == [(ChangeKind.UPDATE, ("frontend",)), (ChangeKind.UPDATE, ("kernel",)),
                         (ChangeKind.ECHO, ("frontend",))]
    corrective = after[3]
    assert corrective.kind is ChangeKind.UPDATE and set(corrective.sides) == {Side.KERNEL, Side.FRONTEND}
    assert (corrective.key("value").old, corrective.key("value").new) == (1000, 10)
    assert corrective.cause.msg_id == big.msg_id and corrective.note == "correction of the front-end update"
    resync = [c for c in tl.changes(model_id=slider) if c.kind is ChangeKind.RESYNC]
    assert resync[0].note == "request_state reply" and resync[-1].note == "update_states"


def test_frontend_created_widget_custom_messages_and_causes(story):
    tl, ids = story["timeline"], story["ids"]
    button = tl.model(ids["fe_button"])
    assert button.opened_by == "frontend" and button.opened[Side.KERNEL] > button.opened[Side.FRONTEND]
    # before update_states the kernel view holds only what the front-end sent; after, the full state
    first = tl.changes(model_id=button.comm_id, side=Side.KERNEL)
    assert first[0].kind is ChangeKind.OPEN and first[0].note == "kernel processing"
    assert "button_style" not in first[0].keys[0].key and any(c.note == "update_states" for c in first)
    (custom,) = tl.custom_messages(ids["image"])
    assert custom.content == {"hello": 1} and custom.buffer_sizes == (3,) and custom.cause.code.startswith("img =")
    dd = tl.model(ids["dropdown"])
    assert dd.closed_by == "frontend" and Side.FRONTEND in dd.closed and Side.KERNEL in dd.closed
    late = [c for c in tl.changes(model_id=dd.comm_id, key="index") if c.kind is ChangeKind.UPDATE]
    assert [(c.key("index").new, tuple(s.value for s in c.sides)) for c in late] == [(1, ("kernel",))]


def test_commands_on_the_recording(story):
    tl, path = story["timeline"], str(story["path"])
    runner = CliRunner()
    res = runner.invoke(cli, ["state", path, "--at", str(end_of_epoch(tl, 0)), "--side", "frontend"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert validation_errors(doc) == [] and story["ids"]["slider"] in doc["state"]
    # one model by id prefix: a closed one (it died with the first kernel) shows its last state
    res = runner.invoke(cli, ["state", path, "--model", story["ids"]["image"][:8], "--compact"])
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(res.output)["state"].values()
    assert entry["model_name"] == "ImageModel" and entry["buffers"][0]["data"] == "WFla"  # b"XYZ"
    res = runner.invoke(cli, ["state", path, "--model", "no-such-model"])
    assert res.exit_code == 2 and "no widget model 'no-such-model'" in res.output
    res = runner.invoke(cli, ["timeline", path, "--model", story["ids"]["slider"], "--since", "0", "--until",
                              str(end_of_epoch(tl, 0))])
    assert res.exit_code == 0 and "correction" in res.output and "1000 → 10" in res.output
    res = runner.invoke(cli, ["models", path])
    assert res.exit_code == 0 and "epoch 1" in res.output and "kernel restart" in res.output
