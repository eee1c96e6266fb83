"""The replay core without a kernel: plans, id maps, digests, the engine (playbooks)."""

from __future__ import annotations

import pytest

from widgetspy.message import Channel, Direction, Message
from widgetspy.replay.compare import MISSING, Ignores, diff_digests, digest, normalize_text
from widgetspy.replay.engine import ReplayEngine
from widgetspy.replay.idmap import IdMap
from widgetspy.replay.plan import build_plan
from widgetspy.session import MessageRecord

K, F = Direction.TO_KERNEL, Direction.TO_FRONTEND


class Script:
    """Builds a recorded session message by message."""

    def __init__(self):
        self.records: list[MessageRecord] = []

    def add(self, direction, channel, msg_type, content=None, parent=None, msg_id=None, peer="fe", buffers=()):
        seq = len(self.records) + 1
        header = {"msg_id": msg_id or f"m{seq}", "msg_type": msg_type, "session": "s-" + peer}
        parent_header = {"msg_id": parent, "msg_type": "?"} if parent else {}
        msg = Message(header, parent_header, {}, content or {}, list(buffers))
        self.records.append(MessageRecord(seq, seq / 10, "zmq", direction, channel, msg, peer=peer))
        return header["msg_id"]

    def request(self, msg_type, content=None, channel=Channel.SHELL, **kw):
        return self.add(K, channel, msg_type, content, **kw)

    def status(self, parent, state):
        return self.add(F, Channel.IOPUB, "status", {"execution_state": state}, parent=parent)

    def kernel(self, msg_type, content, parent, channel=Channel.IOPUB, **kw):
        return self.add(F, channel, msg_type, content, parent=parent, **kw)


def slider_open(cid, value=0):
    return {"comm_id": cid, "target_name": "jupyter.widget",
            "data": {"state": {"_model_name": "IntSliderModel", "value": value}, "buffer_paths": []}}


def test_plan_skips_nudges_debug_and_the_final_shutdown_and_keeps_what_each_step_saw():
    s = Script()
    nudge = s.request("kernel_info_request", peer="server")
    s.kernel("kernel_info_reply", {"status": "ok"}, nudge, channel=Channel.SHELL)
    run = s.request("execute_request", {"code": "1"})
    s.status(run, "busy")
    s.request("debug_request", {}, channel=Channel.CONTROL)
    s.status(run, "idle")
    s.kernel("execute_reply", {"status": "ok"}, run, channel=Channel.SHELL)
    s.request("execute_request", {"code": "2"})
    s.request("shutdown_request", {"restart": False}, channel=Channel.CONTROL)
    plan = build_plan(s.records)
    assert [step.seq for step in plan.steps] == [3, 8]
    assert [(k.msg_type, k.why) for k in plan.skipped] == [
        ("kernel_info_request", "server kernel_info nudge"),
        ("debug_request", "debugger message"),
        ("shutdown_request", "final shutdown"),
    ]
    assert plan.steps[1].waits == {3: 3}  # it went after busy, idle and the reply of @3
    assert [r.msg_type for r in plan.expected[3]] == ["status", "status", "execute_reply"]


def test_answers_go_to_the_latest_request_with_a_reused_msg_id():
    s = Script()
    first = s.request("kernel_info_request", msg_id="dup")
    s.kernel("kernel_info_reply", {"status": "ok"}, first, channel=Channel.SHELL)
    s.request("shutdown_request", {"restart": True}, channel=Channel.CONTROL, msg_id="dup")
    s.kernel("shutdown_reply", {"status": "ok", "restart": True}, "dup", channel=Channel.CONTROL)
    plan = build_plan(s.records)
    assert [r.msg_type for r in plan.expected[1]] == ["kernel_info_reply"]
    assert [r.msg_type for r in plan.expected[3]] == ["shutdown_reply"]


def test_idmap_pairs_comms_by_request_order_and_class_and_rewrites_references():
    ids = IdMap()
    rec_layout = Message({"msg_type": "comm_open"}, content={"comm_id": "L1", "target_name": "jupyter.widget",
                                                              "data": {"state": {"_model_name": "LayoutModel"}}})
    rec_slider = Message({"msg_type": "comm_open"}, content=slider_open("S1"))
    ids.expect_comm_opens(7, [rec_layout, rec_slider])
    new_slider = Message({"msg_type": "comm_open"}, content=slider_open("S2"))
    assert ids.replayed_comm_open(7, new_slider) == "S1"  # paired by class, not position
    new_layout = Message({"msg_type": "comm_open"}, content={"comm_id": "L2", "target_name": "jupyter.widget",
                                                             "data": {"state": {"_model_name": "LayoutModel"}}})
    assert ids.replayed_comm_open(7, new_layout) == "L1"
    content = {"comm_id": "S1", "data": {"state": {"children": ["IPY_MODEL_L1"], "S1": 1}},
               "buffer_paths": [["S1", "state", "x"]]}
    assert ids.to_replayed(content) == {"comm_id": "S2", "data": {"state": {"children": ["IPY_MODEL_L2"], "S2": 1}},
                                        "buffer_paths": [["S2", "state", "x"]]}
    assert ids.to_recorded(ids.to_replayed(content)) == content


def test_digests_compare_merged_state_not_message_counts():
    def msgs(*updates):
        return [(i, Message({"msg_type": "comm_msg"}, content={"comm_id": "S1", "data": {
            "method": "update", "state": u, "buffer_paths": []}})) for i, u in enumerate(updates, 1)]

    ign = Ignores()
    a = digest(msgs({"value": 1}, {"value": 2}, {"max": 9}), {"S1": "IntSliderModel"})
    b = digest(msgs({"value": 2, "max": 9}), {})
    assert diff_digests(a, b, 1, "req", ign) == []
    c = digest(msgs({"value": 3, "max": 9}), {})
    (dv,) = diff_digests(a, c, 1, "req", ign)
    assert (dv.where, dv.expected, dv.actual, dv.seq) == ("update IntSliderModel S1 state.value", 2, 3, 2)
    assert diff_digests(a, c, 1, "req", Ignores.parse(["state.value"])) == []


def test_buffers_and_volatile_text_are_compared_as_content():
    def with_buffer(data):
        return [(1, Message({"msg_type": "comm_msg"}, content={"comm_id": "B", "data": {
            "method": "update", "state": {"x": {"shape": [2]}}, "buffer_paths": [["x", "ar"]]}}, buffers=[data]))]

    ign = Ignores()
    assert diff_digests(digest(with_buffer(b"AB"), {}), digest(with_buffer(b"AB"), {}), 1, "r", ign) == []
    (dv,) = diff_digests(digest(with_buffer(b"AB"), {}), digest(with_buffer(b"AC"), {}), 1, "r", ign)
    assert dv.where.endswith("state.x") and "2 bytes sha256:" in dv.expected["ar"]
    assert normalize_text("<obj at 0x7f3a2b1c9d80> \x1b[31mred\x1b[0m Wall time: 1.23 ms") == "<obj at 0x…> red Wall time: <t>"


def test_engine_waits_for_kernel_comms_and_input_and_what_the_frontend_saw():
    s = Script()
    run = s.request("execute_request", {"code": "s = IntSlider(); name = input()"})
    s.status(run, "busy")
    s.kernel("comm_open", slider_open("S1"), run)
    ask = s.kernel("input_request", {"prompt": "?"}, run, channel=Channel.STDIN)
    s.request("input_reply", {"value": "x"}, channel=Channel.STDIN, parent=ask)
    s.status(run, "idle")
    s.request("comm_msg", {"comm_id": "S1", "data": {"method": "update", "state": {"value": 5}}})
    plan = build_plan(s.records)
    engine = ReplayEngine(plan, pace="fast")

    assert engine.ready().seq == 1
    engine.sent(engine.ready(), "new-run")
    assert engine.ready() is None and "input_request" in engine.waiting_for()
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k1"}, {"msg_id": "new-run"},
                                           content={"execution_state": "busy"}))
    engine.received(Channel.IOPUB, Message({"msg_type": "comm_open", "msg_id": "k2"}, {"msg_id": "new-run"},
                                           content=slider_open("S9")))
    engine.received(Channel.STDIN, Message({"msg_type": "input_request", "msg_id": "k3"}, {"msg_id": "new-run"},
                                           content={"prompt": "?"}))
    reply = engine.ready()
    assert reply.msg_type == "input_reply"
    assert engine.build(reply).parent["msg_id"] == "k3"  # answers the new kernel's input_request
    engine.sent(reply, "new-reply")
    update = engine.ready()  # fast pace: the update need not wait for the idle
    assert engine.build(update).content["comm_id"] == "S9"

    def kernel_says(eng, msg_type, content, channel=Channel.IOPUB):
        eng.received(channel, Message({"msg_type": msg_type, "msg_id": f"k-{msg_type}"}, {"msg_id": "r1"},
                                      content=content))

    idle = ReplayEngine(plan, pace="idle")
    idle.sent(idle.ready(), "r1")
    kernel_says(idle, "status", {"execution_state": "busy"})
    kernel_says(idle, "comm_open", slider_open("S9"))
    kernel_says(idle, "input_request", {"prompt": "?"}, Channel.STDIN)
    idle.sent(idle.ready(), "r5")
    # the recorded update went after the cell's idle: 4 of its messages had arrived
    assert idle.ready() is None and "to get further (3/4 messages)" in idle.waiting_for()
    kernel_says(idle, "status", {"execution_state": "idle"})
    assert idle.ready().seq == 7 and idle.build(idle.ready()).content["comm_id"] == "S9"


def test_a_comm_the_new_kernel_never_opens_does_not_hang_the_replay():
    s = Script()
    run = s.request("execute_request", {"code": "s = IntSlider()"})
    s.kernel("comm_open", slider_open("S1"), run)
    s.status(run, "idle")
    s.request("comm_msg", {"comm_id": "S1", "data": {"method": "update", "state": {"value": 5}}})
    engine = ReplayEngine(build_plan(s.records), pace="fast")
    engine.sent(engine.ready(), "n1")
    assert engine.ready() is None and "to open comm S1" in engine.waiting_for()
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k"}, {"msg_id": "n1"},
                                           content={"execution_state": "idle"}))
    # the request is over without that comm: send anyway (the comparison reports the missing comm_open)
    assert engine.ready().seq == 4
    (step, expected, actual), = [d for d in engine.digests() if d[0].seq == 1]
    assert [dv.where for dv in diff_digests(expected, actual, 1, "r", Ignores())] == ["comm_open IntSliderModel S1"]
    assert diff_digests(expected, actual, 1, "r", Ignores())[0].actual == MISSING


def test_answers_captured_before_their_request_still_belong_to_it():
    s = Script()
    run = s.request("execute_request", {"code": "1"})
    s.status(run, "idle")
    s.kernel("execute_reply", {"status": "ok"}, run, channel=Channel.SHELL)
    s.status("late", "busy")  # answers to the next request, captured before it
    s.kernel("comm_msg", {"comm_id": "S1", "data": {"method": "echo_update", "state": {"value": 1}}}, "late")
    s.request("comm_msg", {"comm_id": "S1", "data": {"method": "update", "state": {"value": 1}}}, msg_id="late")
    plan = build_plan(s.records)
    assert [r.msg_type for r in plan.expected[6]] == ["status", "comm_msg"]


def test_a_request_never_started_while_nothing_runs_counts_as_lost():
    s = Script()
    a = s.request("execute_request", {"code": "1"})
    s.status(a, "busy")
    s.status(a, "idle")
    b = s.request("execute_request", {"code": "2"})
    s.status(b, "busy")
    s.status(b, "idle")
    engine = ReplayEngine(build_plan(s.records), pace="fast")
    engine.sent(engine.ready(), "n1")
    engine.sent(engine.ready(), "n2")
    assert [st.seq for st in engine.lost()] == [1, 4]  # nothing started: both lost
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k"}, {"msg_id": "n1"},
                                           content={"execution_state": "busy"}))
    assert engine.lost() == []  # @1 runs: @4 may just be queued behind it
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k2"}, {"msg_id": "n1"},
                                           content={"execution_state": "idle"}))
    assert [st.seq for st in engine.lost()] == [4]
    engine.resent(engine.step_of[4], "n2-again")
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k3"}, {"msg_id": "n2-again"},
                                           content={"execution_state": "idle"}))
    assert engine.finished()


def test_a_request_that_goes_idle_without_its_reply_ends_and_the_reply_shows_as_missing():
    s = Script()
    run = s.request("execute_request", {"code": "while True: pass"})
    s.status(run, "busy")
    s.kernel("execute_reply", {"status": "error", "ename": "KeyboardInterrupt"}, run, channel=Channel.SHELL)
    s.status(run, "idle")
    engine = ReplayEngine(build_plan(s.records), pace="fast")
    engine.sent(engine.ready(), "n1")
    for state in ("busy", "idle"):
        engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": f"k-{state}"}, {"msg_id": "n1"},
                                               content={"execution_state": state}))
    assert not engine.finished() and engine.idle_without_reply() == {1}  # the reply may still trail the idle
    engine.give_up_reply(1, 2.0)
    assert engine.finished() and "sent no reply" in engine.notes[-1]
    (step, expected, actual), = engine.digests()
    divergences = diff_digests(expected, actual, step.seq, step.describe(), Ignores())
    assert any("reply" in d.where for d in divergences)  # the missing execute_reply is a divergence


@pytest.mark.parametrize("with_parent", [True, False])  # jupyter_client's input() sends no parent header
def test_an_input_reply_does_not_wait_for_output_its_request_prints_after_it(with_parent):
    # The capture can write the kernel's output of `print('hello', name)` a moment
    # before the input_reply it follows (they travel on different channels).
    s = Script()
    run = s.request("execute_request", {"code": "name = input('who? '); print('hello', name)"})
    s.status(run, "busy")
    ask = s.kernel("input_request", {"prompt": "who? "}, run, channel=Channel.STDIN)
    s.kernel("stream", {"name": "stdout", "text": "hello ada\n"}, run)
    s.request("input_reply", {"value": "ada"}, channel=Channel.STDIN, parent=ask if with_parent else None)
    s.status(run, "idle")
    engine = ReplayEngine(build_plan(s.records), pace="idle")
    engine.sent(engine.ready(), "n1")
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k1"}, {"msg_id": "n1"},
                                           content={"execution_state": "busy"}))
    assert engine.ready() is None  # no input_request yet
    engine.received(Channel.STDIN, Message({"msg_type": "input_request", "msg_id": "k2"}, {"msg_id": "n1"},
                                           content={"prompt": "who? "}))
    reply = engine.ready()
    assert reply is not None and reply.msg_type == "input_reply"
    if with_parent:
        assert engine.build(reply).parent["msg_id"] == "k2"


def test_a_request_the_recording_cut_short_waits_for_what_was_recorded():
    s = Script()
    run = s.request("execute_request", {"code": "print('looping'); while True: pass"})
    s.status(run, "busy")
    s.kernel("stream", {"name": "stdout", "text": "looping\n"}, run)  # the file ends here
    engine = ReplayEngine(build_plan(s.records), pace="fast")
    engine.sent(engine.ready(), "n1")
    engine.received(Channel.IOPUB, Message({"msg_type": "status", "msg_id": "k1"}, {"msg_id": "n1"},
                                           content={"execution_state": "busy"}))
    assert not engine.finished() and engine.open_ended() == {1}  # its output has not come yet
    engine.received(Channel.IOPUB, Message({"msg_type": "stream", "msg_id": "k2"}, {"msg_id": "n1"},
                                           content={"name": "stdout", "text": "looping\n"}))
    assert engine.finished()
