"""The websocket tap's sans-IO parts: capture, merge of the two taps, one-tap views, the WS6xx rules."""

from __future__ import annotations

from widgetspy.codec.wsframes import V1_PROTOCOL, encode
from widgetspy.inspectors import Checker
from widgetspy.inspectors.rules.both_taps import IopubDropped, ReconnectState
from widgetspy.inspectors.taps import TwoTapChecker, checker_for
from widgetspy.message import Channel, Direction, Message
from widgetspy.proxy.ws_capture import WsCapture, kernel_id_from_path, redact
from widgetspy.session.merge import merge_parts
from widgetspy.session.records import EventRecord, MessageRecord, SessionHeader, UnparsedRecord
from widgetspy.session.taps import correlate, prefer_tap

KID = "0d5b0c8e-1111-2222-3333-444455556666"
PATH = f"/user/x/api/kernels/{KID}/channels?session_id=abc&token=SECRET"


def msg(mid, mtype="comm_msg", parent=None, **content):
    return Message({"msg_id": mid, "msg_type": mtype, "session": "s", "username": "u", "date": "d", "version": "5.4"},
                   {"msg_id": parent} if parent else {}, {}, content)


def test_paths_and_redaction():
    assert kernel_id_from_path(PATH) == KID
    assert kernel_id_from_path("/api/events/subscribe") is None
    assert kernel_id_from_path(f"/api/kernels/{KID}") is None
    assert redact(PATH).endswith("token=REDACTED") and "SECRET" not in redact(PATH)
    assert redact("/x?_xsrf=1&token=2&a=3") == "/x?_xsrf=REDACTED&token=REDACTED&a=3"


def test_capture_connect_messages_close_reconnect():
    cap = WsCapture()
    assert cap.opened("f0", "/api/events/subscribe", None, 0.0) is None
    assert cap.message("f0", True, "{}", True, 0.1) is None and cap.other_ws_messages == 1
    k, recs = cap.opened("f1", PATH, V1_PROTOCOL, 1.0)
    ev = recs[0]
    assert ev.event == "ws_connected" and ev.data["session_id"] == "abc" and ev.data["framing"] == "v1"
    assert "SECRET" not in ev.data["path"] and ev.data["reconnect"] is False
    payload, is_text = encode(msg("m1", comm_id="c"), "shell", V1_PROTOCOL)
    _, (rec,) = cap.message("f1", True, payload, is_text, 1.1)
    assert isinstance(rec, MessageRecord) and rec.tap == "ws" and rec.peer == "abc"
    assert rec.direction is Direction.TO_KERNEL and rec.channel is Channel.SHELL and rec.size == len(payload)
    _, (bad,) = cap.message("f1", False, b"\x01\x00", False, 1.2)
    assert isinstance(bad, UnparsedRecord) and "shorter" in bad.reason and bad.direction is Direction.TO_FRONTEND
    _, (closed,) = cap.closed("f1", 1001, "bye", "client", 2.0)
    assert closed.data["code"] == 1001 and closed.data["to_kernel"] == 1 and closed.data["unparsed"] == 1
    _, (again,) = cap.opened("f2", PATH.replace("abc", "def"), None, 3.0)
    assert again.data["reconnect"] and again.data["same_session"] is False and again.data["framing"] == "legacy"
    assert [r.seq for r in (ev, rec, bad, closed, again)] == [1, 2, 3, 4, 5]
    _, (refused,) = cap.refused(PATH, 403, 4.0)
    assert refused.event == "ws_refused" and refused.data["status"] == 403


def _hdr(taps, t0, **rec):
    return SessionHeader(1, "0", "2026-01-01T00:00:00.000Z", {"name": "python3"}, taps,
                         {"monotonic_t0": t0, "kernel_id": KID, **rec})


def test_merge_interleaves_on_the_common_clock():
    zmq = [MessageRecord(1, 0.5, "zmq", Direction.TO_KERNEL, Channel.SHELL, msg("a")),
           MessageRecord(2, 0.7, "zmq", Direction.TO_FRONTEND, Channel.IOPUB, msg("b"))]
    ws = [EventRecord(1, 0.1, "ws_connected", {}),
          MessageRecord(2, 1.4, "ws", Direction.TO_KERNEL, Channel.SHELL, msg("a")),  # 1.4 + 0 < 0.5 + 1
          MessageRecord(3, 1.8, "ws", Direction.TO_FRONTEND, Channel.IOPUB, msg("b"))]
    header, records = merge_parts([(_hdr(["zmq"], 101.0), zmq), (_hdr(["ws"], 100.0), ws)])
    records = list(records)
    assert header.taps == ["zmq", "ws"] and header.kernel["id"] == KID and header.recorder["clock"] == "monotonic"
    assert [(r.seq, getattr(r, "tap", "ev")) for r in records] == [(1, "ev"), (2, "ws"), (3, "zmq"), (4, "zmq"), (5, "ws")]
    assert records[2].t == 1.5
    pairs = correlate(records)
    assert pairs["a"].both and abs(pairs["a"].latency() - 0.1) < 1e-9
    one = list(prefer_tap(records))
    assert [getattr(r, "tap", "ev") for r in one] == ["ev", "zmq", "zmq"]
    assert list(prefer_tap(zmq)) == zmq


def _drop_session():
    recs = [EventRecord(1, 0.0, "ws_connected", {"session_id": "a"})]
    seq = 1
    for i in range(6):
        seq += 1
        recs.append(MessageRecord(seq, 1 + i * 0.01, "zmq", Direction.TO_FRONTEND, Channel.IOPUB,
                                  msg(f"k{i}", comm_id="c1", data={"method": "update", "state": {"value": i}})))
    for i in (0, 1, 5):  # 2, 3, 4 dropped by the server
        seq += 1
        recs.append(MessageRecord(seq, 1.1 + i * 0.01, "ws", Direction.TO_FRONTEND, Channel.IOPUB,
                                  msg(f"k{i}", comm_id="c1", data={"method": "update", "state": {"value": i}})))
    seq += 1
    recs.append(MessageRecord(seq, 1.2, "ws", Direction.TO_FRONTEND, Channel.IOPUB,
                              msg("n", "stream", name="stderr", text="IOPub message rate exceeded.\n")))
    return recs


def test_iopub_dropped_counts_per_comm_with_the_gap():
    checker = Checker(rules=[IopubDropped()])
    findings = checker.check(_drop_session())
    (f,) = findings
    assert f.rule_id == "WS601" and f.model_id == "c1"
    assert "3 of 6" in f.message and "zmq seq 4..6" in f.message and "rate exceeded" in f.message


def test_two_tap_checker_feeds_one_tap_rules_the_zmq_copy():
    base = Checker(select=["WS1"])
    assert checker_for(base, ["zmq"]) is base
    two = checker_for(base, ["zmq", "ws"])
    assert isinstance(two, TwoTapChecker)
    two.check(_drop_session())
    assert [f.rule_id for f in two.findings if f.rule_id.startswith("WS6")] == ["WS601"]
    assert two.ctx.messages == 6  # the one-tap checker saw the zmq copies only


def test_reconnect_while_busy_loses_messages_and_state_is_refetched():
    R = []

    def add(rec):
        R.append(rec)

    seq = iter(range(1, 100))
    add(EventRecord(next(seq), 0.0, "ws_connected", {"session_id": "a", "reconnect": False}))
    add(MessageRecord(next(seq), 0.1, "ws", Direction.TO_KERNEL, Channel.SHELL, msg("ex", "execute_request")))
    add(MessageRecord(next(seq), 0.2, "zmq", Direction.TO_KERNEL, Channel.SHELL, msg("ex", "execute_request")))
    add(MessageRecord(next(seq), 0.3, "zmq", Direction.TO_FRONTEND, Channel.IOPUB,
                      msg("b1", "status", parent="ex", execution_state="busy")))
    add(MessageRecord(next(seq), 0.31, "zmq", Direction.TO_FRONTEND, Channel.IOPUB,
                      msg("o1", "comm_open", parent="ex", comm_id="w1", target_name="jupyter.widget",
                          data={"state": {}})))
    add(EventRecord(next(seq), 1.0, "ws_closed", {"session_id": "a", "code": 1001}))
    add(MessageRecord(next(seq), 1.5, "zmq", Direction.TO_FRONTEND, Channel.IOPUB,
                      msg("lost", "comm_msg", parent="ex", comm_id="w1", data={"method": "update"})))
    add(EventRecord(next(seq), 2.0, "ws_connected",
                    {"session_id": "b", "reconnect": True, "previous_session_id": "a", "same_session": False}))
    add(MessageRecord(next(seq), 2.1, "ws", Direction.TO_KERNEL, Channel.SHELL,
                      msg("rs", "comm_msg", comm_id="ctl", data={"method": "request_states"})))
    add(MessageRecord(next(seq), 7.0, "ws", Direction.TO_FRONTEND, Channel.IOPUB,
                      msg("us", "comm_msg", parent="rs", comm_id="ctl", data={"method": "update_states",
                                                                              "states": {"w1": {}}})))
    (f,) = Checker(rules=[ReconnectState()]).check(R)
    assert f.rule_id == "WS602" and f.severity.label == "warning"
    assert "new session_id while the kernel was busy: 1 kernel message" in f.message
    assert "later than the front-end's 4000 ms timeout" in f.message
