"""Capture: what the devices forwarded -> numbered records (sans-IO)."""

import json

from widgetspy.codec.zmqframes import DELIM
from widgetspy.message import Channel, Direction
from widgetspy.proxy.capture import Capture, capture_tag, parse_tag
from widgetspy.session import EventRecord, MessageRecord, UnparsedRecord

K, F = Direction.TO_KERNEL, Direction.TO_FRONTEND


def msg(ident, msg_id, msg_type="execute_request"):
    parts = [{"msg_id": msg_id, "msg_type": msg_type}, {}, {}, {}]
    return [ident, DELIM, b"sig", *(json.dumps(p).encode() for p in parts)]


def test_tags_round_trip():
    for ch in Channel:
        for d in Direction:
            assert parse_tag(capture_tag(ch, d)) == (ch, d)


def test_new_client_is_announced_once_and_seq_is_monotonic():
    cap = Capture()
    out = cap.frames(Channel.SHELL, K, msg(b"A", "1"), 0.1)
    out += cap.frames(Channel.SHELL, F, msg(b"A", "2", "execute_reply"), 0.2)
    out += cap.frames(Channel.CONTROL, K, msg(b"A", "3"), 0.3)
    out += cap.frames(Channel.SHELL, K, msg(b"B", "4"), 0.4)
    kinds = [(type(r).__name__, getattr(r, "event", None)) for r in out]
    assert kinds == [
        ("EventRecord", "client_connected"),
        ("MessageRecord", None),
        ("MessageRecord", None),
        ("MessageRecord", None),
        ("EventRecord", "client_connected"),
        ("MessageRecord", None),
    ]
    assert [r.seq for r in out] == [1, 2, 3, 4, 5, 6]
    assert out[1].peer == "A" and out[1].frames == 7


def test_heartbeats_are_counted_not_logged():
    cap = Capture()
    assert cap.frames(Channel.HB, K, [b"ping"], 100.0) == [EventRecord(1, 100.0, "heartbeat", {"pings": 1, "pongs": 0})]
    for t in range(10):
        assert cap.frames(Channel.HB, K, [b"ping"], 100.0 + t) == []
        assert cap.frames(Channel.HB, F, [b"ping"], 100.0 + t) == []
    assert cap.hb_pings == 11 and cap.hb_pongs == 10
    assert cap.heartbeat_summary(200.0).data == {"pings": 11, "pongs": 10}
    assert cap.heartbeat_summary(201.0) is None  # nothing new


def test_subscriptions_and_garbage():
    cap = Capture()
    (sub,) = cap.frames(Channel.IOPUB, K, [b"\x01"], 0.0)
    assert isinstance(sub, EventRecord) and sub.data == {"subscribe": True, "topic": ""}
    (bad,) = cap.frames(Channel.SHELL, K, [b"A", b"no delimiter"], 0.0)
    assert isinstance(bad, UnparsedRecord) and "delimiter" in bad.reason and bad.size == 13
    (iopub,) = cap.frames(Channel.IOPUB, F, msg(b"kernel.x.status", "9", "status"), 0.0)
    assert isinstance(iopub, MessageRecord) and iopub.peer == "kernel.x.status"
    assert cap.unparsed_count == 1 and cap.message_count == 1


def test_a_batch_puts_a_request_before_the_kernel_messages_that_answer_it():
    def reply(msg_id, parent, msg_type="status"):
        parts = [{"msg_id": msg_id, "msg_type": msg_type}, {"msg_id": parent}, {}, {}]
        return [b"kernel.x.status", DELIM, b"sig", *(json.dumps(p).encode() for p in parts)]

    cap = Capture()
    cap.frames(Channel.SHELL, K, msg(b"A", "old"), 0.0)  # client A announced here (seqs 1, 2)
    # the iopub device's copies got to the capture thread before the shell device's
    items = [
        (Channel.IOPUB, F, reply("b1", "req"), 1.0),
        (Channel.IOPUB, F, reply("e1", "req", "comm_msg"), 1.0),
        (Channel.SHELL, K, msg(b"A", "req", "comm_msg"), 1.0),
        (Channel.SHELL, K, msg(b"B", "other"), 1.0),  # a new client, not answered yet: stays put
    ]
    out = cap.batch(items)
    assert [getattr(r, "msg_id", None) or r.event for r in out] == ["req", "b1", "e1", "client_connected", "other"]
    assert [r.seq for r in out] == [3, 4, 5, 6, 7]


def test_an_answer_captured_a_batch_before_its_request_waits_for_it():
    def answer(msg_id, parent):
        parts = [{"msg_id": msg_id, "msg_type": "status"}, {"msg_id": parent}, {}, {"execution_state": "busy"}]
        return [b"kernel.x.status", DELIM, b"sig", *(json.dumps(p).encode() for p in parts)]

    cap = Capture()
    first = cap.batch([(Channel.IOPUB, F, answer("b1", "req"), 1.00)])
    assert first == []  # held: its request has not been captured yet
    second = cap.batch([(Channel.SHELL, K, msg(b"A", "req"), 1.01)])
    assert [getattr(r, "msg_id", None) or r.event for r in second] == ["client_connected", "req", "b1"]
    assert [r.seq for r in second] == [1, 2, 3] and second[2].t == 1.01
    # an answer to a request from before the recording is released after HOLD
    assert cap.batch([(Channel.IOPUB, F, answer("b2", "ancient"), 2.0)]) == []
    assert cap.batch([], now=2.01) == []
    (late,) = cap.batch([], now=2.0 + 0.06)
    assert late.msg_id == "b2" and late.seq == 4
    assert cap.batch([(Channel.IOPUB, F, answer("b3", "ancient2"), 3.0)]) == []
    assert [r.msg_id for r in cap.flush()] == ["b3"]
