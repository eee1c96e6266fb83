"""Unit tests of the sans-IO timeline with hand-built message lists (no kernel)."""

from __future__ import annotations

import itertools

import pytest

from widgetspy.buffers import remove_buffers
from widgetspy.message import Channel, Direction, Message
from widgetspy.session.records import EventRecord, MessageRecord
from widgetspy.timeline import (
    MISSING,
    ChangeKind,
    HistoryNotKept,
    Side,
    Timeline,
    decode_entry_state,
    state_document,
    validation_errors,
)

K, F = Side.KERNEL, Side.FRONTEND
IDENT = {
    "_model_module": "@jupyter-widgets/controls",
    "_model_module_version": "2.0.0",
    "_view_module": "@jupyter-widgets/controls",
    "_view_module_version": "2.0.0",
}


def ident(name: str) -> dict:
    return {**IDENT, "_model_name": f"{name}Model", "_view_name": f"{name}View"}


class Script:
    """Builds a session as a kernel and one front-end would produce it."""

    def __init__(self, kernel_session: str = "kern-A") -> None:
        self.records: list = []
        self.seq = itertools.count(1)
        self.ids = itertools.count(1)
        self.kernel_session = kernel_session

    def _add(self, rec):
        self.records.append(rec)
        return rec

    def _msg(self, msg_type, content, *, session, parent=None, buffers=(), metadata=None) -> Message:
        return Message(
            header={"msg_id": f"{session}-{next(self.ids)}", "msg_type": msg_type, "session": session},
            parent_header={"msg_id": parent, "msg_type": "x"} if parent else {},
            metadata=metadata or {},
            content=content,
            buffers=list(buffers),
        )

    def rec(self, direction, channel, msg) -> MessageRecord:
        seq = next(self.seq)
        return self._add(MessageRecord(seq, seq / 100, "zmq", direction, channel, msg))

    def fe(self, msg_type, content, *, buffers=(), channel=Channel.SHELL, metadata=None) -> MessageRecord:
        msg = self._msg(msg_type, content, session="fe", buffers=buffers, metadata=metadata)
        return self.rec(Direction.TO_KERNEL, channel, msg)

    def k(self, msg_type, content, parent, *, buffers=(), channel=Channel.IOPUB) -> MessageRecord:
        msg = self._msg(msg_type, content, session=self.kernel_session, parent=parent, buffers=buffers)
        return self.rec(Direction.TO_FRONTEND, channel, msg)

    def event(self, name, **data) -> EventRecord:
        seq = next(self.seq)
        return self._add(EventRecord(seq, seq / 100, name, data))

    # higher level
    def busy(self, parent):
        return self.k("status", {"execution_state": "busy"}, parent)

    def idle(self, parent):
        return self.k("status", {"execution_state": "idle"}, parent)

    def execute(self, code="pass"):
        return self.fe("execute_request", {"code": code}, metadata={"cellId": "cell-1"})

    def k_open(self, comm_id, state, parent, target="jupyter.widget"):
        json_state, paths, bufs = remove_buffers(state)
        return self.k("comm_open", {"comm_id": comm_id, "target_name": target,
                                    "data": {"state": json_state, "buffer_paths": paths}}, parent, buffers=bufs)

    def k_update(self, comm_id, state, parent, method="update"):
        json_state, paths, bufs = remove_buffers(state)
        return self.k("comm_msg", {"comm_id": comm_id, "data": {"method": method, "state": json_state,
                                                                   "buffer_paths": paths}}, parent, buffers=bufs)

    def fe_update(self, comm_id, state):
        json_state, paths, bufs = remove_buffers(state)
        return self.fe("comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": json_state,
                                                                    "buffer_paths": paths}}, buffers=bufs)

    def timeline(self, **kw) -> Timeline:
        return Timeline(**kw).feed_all(self.records)


def slider(s: Script, comm_id="s1", value=3, parent=None):
    return s.k_open(comm_id, {**ident("IntSlider"), "value": value, "max": 10,
                              "layout": "IPY_MODEL_L1"}, parent)


# ------------------------------------------------------------------ buffers


def test_nested_buffer_paths_are_put_back_and_exported():
    s = Script()
    ex = s.execute("w = Custom()")
    s.busy(ex.msg_id)
    state = {**ident("Custom"), "data": {"x": {"ar": b"AB", "shape": [2]}, "k": 1}, "lst": [b"C", 2, b"DE"]}
    opened = s.k_open("c1", state, ex.msg_id)
    assert opened.msg.content["data"]["buffer_paths"] == [["data", "x", "ar"], ["lst", 0], ["lst", 2]]
    s.idle(ex.msg_id)
    tl = s.timeline()
    for side in (K, F):
        got = tl.state("c1", side=side)
        assert got["data"] == {"x": {"ar": b"AB", "shape": [2]}, "k": 1}
        assert got["lst"] == [b"C", 2, b"DE"]
    doc = state_document({"c1": tl.state("c1")})
    assert validation_errors(doc) == []
    entry = doc["state"]["c1"]
    assert [b["path"] for b in entry["buffers"]] == [["data", "x", "ar"], ["lst", 0], ["lst", 2]]
    assert entry["state"]["lst"] == [None, 2, None] and "ar" not in entry["state"]["data"]["x"]
    assert decode_entry_state(entry) == tl.state("c1")


def test_buffer_replaced_by_json_value_and_bad_paths_reported():
    s = Script()
    ex = s.execute()
    s.k_open("c1", {**ident("Custom"), "blob": b"\x00\x01"}, ex.msg_id)
    s.k_update("c1", {"blob": "now text"}, ex.msg_id)
    bad = s.k("comm_msg", {"comm_id": "c1", "data": {"method": "update", "state": {"x": {}},
                                                      "buffer_paths": [["nope", "y"], ["x", "z"]]}},
              ex.msg_id, buffers=[b"1", b"2"])
    tl = s.timeline()
    state = tl.state("c1")
    assert state["blob"] == "now text"  # no stale buffer (nbclient quirk 3 does not apply)
    assert state["x"] == {"z": b"2"}  # the good path still applied
    assert any(p.seq == bad.seq and "nope" in p.text for p in tl.problems)


# ------------------------------------------------------------------ update_states / request_state


def test_update_states_paths_with_state_segment_resync_and_adopt():
    s = Script()
    ex = s.execute()
    s.k_open("img", {**ident("Image"), "value": b"old", "width": "10"}, ex.msg_id)
    s.idle(ex.msg_id)
    ctl = s.fe("comm_open", {"comm_id": "ctl", "target_name": "jupyter.widget.control", "data": {}})
    s.busy(ctl.msg_id)
    s.idle(ctl.msg_id)
    req = s.fe("comm_msg", {"comm_id": "ctl", "data": {"method": "request_states"}})
    s.busy(req.msg_id)
    states = {
        # the real ipywidgets form: [model_id, "state", ...]; "width" is gone from the full state
        "img": {"model_name": "ImageModel", "model_module": "@jupyter-widgets/controls",
                "model_module_version": "2.0.0", "state": {**ident("Image"), "format": "png"}},
        # a model whose comm_open was not recorded; messages.md's form [model_id, ...] (no "state")
        "other": {"model_name": "ImageModel", "model_module": "@jupyter-widgets/controls",
                  "model_module_version": "2.0.0", "state": {**ident("Image"), "format": "jpg"}},
    }
    us = s.k("comm_msg", {"comm_id": "ctl", "data": {"method": "update_states", "states": states,
                                                     "buffer_paths": [["img", "state", "value"], ["other", "value"]]}},
             req.msg_id, buffers=[b"new", b"adopted"])
    s.idle(req.msg_id)
    tl = s.timeline()
    for side in (K, F):
        img = tl.state("img", side=side)
        assert img["value"] == b"new" and img["format"] == "png" and "width" not in img
        assert tl.state("other", side=side)["value"] == b"adopted"
    resync = tl.changes(model_id="img", since=us.seq)[0]
    assert resync.kind is ChangeKind.RESYNC and set(resync.sides) == {K, F}
    assert resync.key("width").old == "10" and resync.key("width").new is MISSING
    assert resync.cause.method == "request_states"
    assert tl.model("other").opened_by == "adopted"
    assert any("adopted" in p.text for p in tl.problems)


def test_request_state_reply_is_a_resync():
    s = Script()
    ex = s.execute()
    slider(s, parent=ex.msg_id)
    s.idle(ex.msg_id)
    req = s.fe("comm_msg", {"comm_id": "s1", "data": {"method": "request_state"}})
    s.busy(req.msg_id)
    rep = s.k_update("s1", {**ident("IntSlider"), "value": 3, "max": 10, "layout": "IPY_MODEL_L1"}, req.msg_id)
    s.idle(req.msg_id)
    tl = s.timeline()
    (ch,) = tl.changes(since=rep.seq)
    assert ch.kind is ChangeKind.RESYNC and ch.note == "request_state reply" and ch.changed_keys == ()


# ------------------------------------------------------------------ echo_update


def test_echo_update_then_corrective_update():
    s = Script()
    ex = s.execute("s = IntSlider(max=10)")
    slider(s, parent=ex.msg_id)
    s.idle(ex.msg_id)
    up = s.fe_update("s1", {"value": 1000})
    busy = s.busy(up.msg_id)
    echo = s.k_update("s1", {"value": 1000}, up.msg_id, method="echo_update")
    fix = s.k_update("s1", {"value": 10}, up.msg_id)
    s.idle(up.msg_id)
    tl = s.timeline()
    # front-end: its own value when sent, the echo (its own, applied), then the clamp
    assert tl.state("s1", at=up.seq, side=F)["value"] == 1000
    assert tl.state("s1", at=up.seq, side=K)["value"] == 3  # the kernel has not read it yet
    assert tl.state("s1", at=busy.seq, side=K)["value"] == 1000
    assert tl.state("s1", side=K)["value"] == tl.state("s1", side=F)["value"] == 10
    changes = tl.changes(model_id="s1", since=up.seq)
    assert [(c.seq, c.kind, tuple(c.sides)) for c in changes] == [
        (up.seq, ChangeKind.UPDATE, (F,)),
        (busy.seq, ChangeKind.UPDATE, (K,)),
        (echo.seq, ChangeKind.ECHO, (F,)),  # the kernel view already holds the echoed value
        (fix.seq, ChangeKind.UPDATE, (K, F)),
    ]
    corrective = changes[-1]
    assert corrective.key("value").old == 1000 and corrective.key("value").new == 10
    assert corrective.cause.msg_id == up.msg_id and corrective.cause.method == "update"
    assert corrective.note == "correction of the front-end update"
    assert changes[1].msg_seq == up.seq and changes[1].direction is Direction.TO_KERNEL


def test_older_echo_is_ignored_by_the_frontend_view():
    s = Script()
    ex = s.execute()
    slider(s, parent=ex.msg_id)
    s.idle(ex.msg_id)
    u1 = s.fe_update("s1", {"value": 1})
    u2 = s.fe_update("s1", {"value": 2})  # sent before the echo of u1 came back
    s.busy(u1.msg_id)
    e1 = s.k_update("s1", {"value": 1}, u1.msg_id, method="echo_update")
    s.idle(u1.msg_id)
    assert Timeline().feed_all(s.records).state("s1", side=F)["value"] == 2  # the old echo was dropped
    s.busy(u2.msg_id)
    s.k_update("s1", {"value": 2}, u2.msg_id, method="echo_update")
    s.idle(u2.msg_id)
    tl = s.timeline()
    (echo1,) = tl.changes(model_id="s1", since=e1.seq, until=e1.seq)
    assert echo1.ignored == ("value",) and echo1.keys == ()
    assert tl.state("s1", side=F)["value"] == tl.state("s1", side=K)["value"] == 2


def test_kernel_view_applies_frontend_updates_when_processed():
    """A front-end update sent while the kernel runs a cell: the two views disagree."""
    s = Script()
    ex = s.execute("s = IntSlider()")
    slider(s, parent=ex.msg_id)
    s.idle(ex.msg_id)
    ex2 = s.execute("s.value = 5")
    s.busy(ex2.msg_id)
    up = s.fe_update("s1", {"value": 7})  # the user drags while the cell runs
    s.k_update("s1", {"value": 5}, ex2.msg_id)  # the cell's change arrives after the drag
    s.idle(ex2.msg_id)
    s.busy(up.msg_id)
    s.k_update("s1", {"value": 7}, up.msg_id, method="echo_update")
    s.idle(up.msg_id)
    tl = s.timeline()
    assert tl.state("s1", side=K)["value"] == 7  # the kernel read the drag last
    assert tl.state("s1", side=F)["value"] == 7  # its own echo came back after the cell's update
    # between the cell's update and the drag being processed, they disagreed
    mid = s.records.index(next(r for r in s.records if getattr(r, "msg", None) and r.msg.comm_method == "update"
                               and r.direction is Direction.TO_FRONTEND)) + 1
    assert tl.state("s1", at=mid, side=K)["value"] == 5
    assert tl.state("s1", at=mid, side=F)["value"] == 5
    assert tl.state("s1", at=up.seq, side=F)["value"] == 7 and tl.state("s1", at=up.seq, side=K)["value"] == 3


# ------------------------------------------------------------------ references, views, custom


def test_references_resolved_at_a_seq_views_and_custom():
    s = Script()
    ex = s.execute("box = HBox([s]); display(box)")
    s.busy(ex.msg_id)
    early = s.k_open("box", {**ident("HBox"), "children": ["IPY_MODEL_s1"], "layout": "IPY_MODEL_L1"}, ex.msg_id)
    s.k_open("L1", {**ident("Layout"), "_model_module": "@jupyter-widgets/base"}, ex.msg_id)
    slider(s, parent=ex.msg_id)
    s.k("display_data", {"data": {"application/vnd.jupyter.widget-view+json":
                                  {"version_major": 2, "version_minor": 0, "model_id": "box"}},
                         "metadata": {}, "transient": {}}, ex.msg_id)
    s.k("comm_msg", {"comm_id": "box", "data": {"method": "custom", "content": {"hello": 1}}}, ex.msg_id,
        buffers=[b"abc"])
    s.idle(ex.msg_id)
    tl = s.timeline()
    at_open = {(r.source, r.label, r.target): r.resolved for r in tl.references(at=early.seq)}
    assert at_open == {("box", "children[0]", "s1"): False, ("box", "layout", "L1"): False}
    now = {(r.source, r.label, r.target): r.resolved for r in tl.references()}
    assert now == {("box", "children[0]", "s1"): True, ("box", "layout", "L1"): True, ("s1", "layout", "L1"): True}
    (view,) = tl.model("box").views
    assert view.cause.code.startswith("box = HBox") and view.cause.cell_id == "cell-1" and view.known_model
    (custom,) = tl.custom_messages("box")
    assert custom.content == {"hello": 1} and custom.buffer_sizes == (3,) and custom.json_size == len('{"hello":1}')


# ------------------------------------------------------------------ closing, epochs


def test_closed_models_leave_the_state_but_keep_their_last_state():
    s = Script()
    ex = s.execute()
    s.k_open("b", ident("Button"), ex.msg_id)
    slider(s, parent=ex.msg_id)
    close = s.k("comm_close", {"comm_id": "b", "data": {}}, ex.msg_id)
    s.idle(ex.msg_id)
    fe_close = s.fe("comm_close", {"comm_id": "s1", "data": {}})
    busy = s.busy(fe_close.msg_id)
    late = s.k_update("s1", {"value": 9}, ex.msg_id)  # ipywidgets still sends on a comm the front-end closed
    s.idle(fe_close.msg_id)
    tl = s.timeline()
    assert tl.model("b").closed_by == "kernel" and tl.model("b").closed == {K: close.seq, F: close.seq}
    assert tl.model("s1").closed == {F: fe_close.seq, K: busy.seq}
    assert tl.states() == {} and tl.states(side=F) == {}
    assert set(tl.states(include_closed=True)) == {"b", "s1"}
    assert set(tl.states(at=close.seq - 1)) == {"b", "s1"}
    assert tl.state("s1", side=K)["value"] == 9 and tl.state("s1", side=F)["value"] == 3
    assert any(c.seq == late.seq for c in tl.changes(model_id="s1", side=K))


def test_restart_starts_a_new_epoch():
    s = Script("kern-A")
    ex = s.execute()
    s.busy(ex.msg_id)
    slider(s, parent=ex.msg_id)
    s.idle(ex.msg_id)
    before = s.records[-1].seq
    restart = s.event("kernel_restarted", pid=2)
    s.kernel_session = "kern-B"
    ex2 = s.execute()
    s.busy(ex2.msg_id)
    slider(s, comm_id="s2", value=5, parent=ex2.msg_id)
    s.idle(ex2.msg_id)
    tl = s.timeline()
    assert [(e.index, e.kernel_session, e.end_reason) for e in tl.epochs] == [
        (0, "kern-A", "kernel_restarted"), (1, "kern-B", None)]
    assert tl.model("s1").closed_by == "kernel_restarted" and tl.model("s1").closed[K] == restart.seq
    assert tl.model("s1").epoch == 0 and tl.model("s2").epoch == 1
    assert set(tl.states()) == {"s2"}
    assert set(tl.states(at=before)) == {"s1"}


def test_new_kernel_session_without_an_event_is_a_new_epoch_and_exit_ends_it():
    s = Script("kern-A")
    ex = s.execute()
    slider(s, parent=ex.msg_id)
    s.idle(ex.msg_id)
    s.kernel_session = "kern-B"
    ex2 = s.execute()
    s.busy(ex2.msg_id)
    slider(s, comm_id="s2", parent=ex2.msg_id)
    s.idle(ex2.msg_id)
    exit_ = s.event("kernel_exited", exit_code=0)
    tl = s.timeline()
    assert [e.end_reason for e in tl.epochs] == ["new kernel session", "kernel_exited"]
    assert tl.model("s1").closed_by == "new kernel session"
    assert tl.states() == {}  # the kernel is gone
    assert tl.final_seq() == exit_.seq - 1 and set(tl.states(at=tl.final_seq())) == {"s2"}


def test_frontend_created_widget_and_history_off():
    s = Script()
    op = s.fe("comm_open", {"comm_id": "fe1", "target_name": "jupyter.widget", "data": {"state": ident("Button")}},
              metadata={"version": "2.1.0"})
    busy = s.busy(op.msg_id)
    s.k_update("fe1", ident("Button"), op.msg_id, method="echo_update")
    s.idle(op.msg_id)
    tl = s.timeline()
    m = tl.model("fe1")
    assert m.opened_by == "frontend" and m.opened == {F: op.seq, K: busy.seq}
    assert tl.state("fe1", at=op.seq, side=K) is None and tl.state("fe1", at=op.seq, side=F) == ident("Button")
    lean = s.timeline(history=False)
    assert lean.state("fe1") == tl.state("fe1") and lean.model("fe1").change_count == m.change_count
    with pytest.raises(HistoryNotKept):
        lean.state("fe1", at=op.seq, side=F)
    with pytest.raises(HistoryNotKept):
        lean.changes()


# ------------------------------------------------------------------ commands on a hand-built session file


def write_session(path, records):
    from widgetspy.session import SessionHeader, SessionWriter

    header = SessionHeader(format_version=1, widgetspy_version="test", created="2026-01-01T00:00:00Z",
                           kernel={"name": "python3"}, taps=["zmq"])
    with SessionWriter(path, header) as w:
        w.write_many(records)
    return str(path)


def test_commands_on_a_hand_built_session(tmp_path):
    import json

    from click.testing import CliRunner

    from widgetspy.cli import cli

    s = Script()
    ex = s.execute("box = HBox([s])")
    s.busy(ex.msg_id)
    s.k_open("L1", {**ident("Layout"), "_model_module": "@jupyter-widgets/base"}, ex.msg_id)
    slider(s, parent=ex.msg_id)
    s.k_open("box", {**ident("HBox"), "children": ["IPY_MODEL_s1"], "layout": "IPY_MODEL_L1"}, ex.msg_id)
    s.idle(ex.msg_id)
    up = s.fe_update("s1", {"value": 1000})
    s.busy(up.msg_id)
    s.k_update("s1", {"value": 1000}, up.msg_id, method="echo_update")
    s.k_update("s1", {"value": 10}, up.msg_id)
    s.idle(up.msg_id)
    path = write_session(tmp_path / "s.jsonl", s.records)
    run = CliRunner().invoke

    res = run(cli, ["timeline", path, "--name", "IntSlider", "--key", "value", "--since", str(up.seq), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [(r["kind"], r["sides"], r["keys"][0].get("new")) for r in rows] == [
        ("update", ["frontend"], 1000), ("update", ["kernel"], 1000), ("echo_update", ["frontend"], 1000),
        ("update", ["kernel", "frontend"], 10)]
    assert rows[-1]["cause"]["msg_id"] == up.msg_id and rows[-1]["keys"][0]["old"] == 1000

    res = run(cli, ["timeline", path, "--model", "s1", "--until", str(up.seq)])
    assert res.exit_code == 0 and "1000" in res.output and "execute" in res.output

    res = run(cli, ["state", path, "--at", str(up.seq), "--side", "frontend", "--compact"])
    doc = json.loads(res.output)
    assert validation_errors(doc) == [] and doc["state"]["s1"]["state"]["value"] == 1000
    res = run(cli, ["state", path, "--at", str(up.seq), "--compact"])
    assert json.loads(res.output)["state"]["s1"]["state"]["value"] == 3
    res = run(cli, ["state", path, "--compact"])
    assert json.loads(res.output)["state"]["s1"]["state"]["value"] == 10

    res = run(cli, ["models", path])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    box = next(i for i, ln in enumerate(lines) if "HBoxModel" in ln)
    assert "children[0] IntSliderModel" in lines[box + 1] and "layout LayoutModel" in lines[box + 2]


def test_commands_fail_with_one_line_and_status_2(tmp_path):
    from click.testing import CliRunner

    from widgetspy.cli import cli

    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not a session\n")
    good = write_session(tmp_path / "s.jsonl", [])
    run = CliRunner().invoke
    for args in (
        ["timeline", str(bad)],
        ["state", str(tmp_path / "missing.jsonl")],
        ["models", str(tmp_path)],
        ["timeline", good, "--model", "x", "--name", "y"],
        ["timeline", good, "--name", "IntSlider"],
        ["state", good, "--model", "nope"],
        ["state", good, "--at", "-1"],
    ):
        res = run(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1 and "error" in res.output.lower(), (args, res.output)
