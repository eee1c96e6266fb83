"""The websocket tap's sans-IO parts: capture, merge of the two taps, one-tap views, the WS6xx rules."""

from __future__ import annotations

import pytest

from widgetspy.codec.wsframes import V1_PROTOCOL, encode
from widgetspy.inspectors import Checker
from widgetspy.inspectors.rules.both_taps import IopubDropped, ReconnectState
from widgetspy.message import Channel, Direction, Message
from widgetspy.proxy.ws_capture import WsCapture, kernel_id_from_path, redact, redact_url, request_secrets
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
    checker = Checker(rules=[IopubDropped()], taps=["zmq", "ws"])
    findings = checker.check(_drop_session())
    (f,) = findings
    assert f.rule_id == "WS601" and f.model_id == "c1"
    assert "3 of 6" in f.message and "zmq seq 4..6" in f.message and "rate exceeded" in f.message


def test_two_tap_checker_feeds_one_tap_rules_the_zmq_copy():
    one = Checker(select=["WS1", "WS6"], taps=["zmq"])
    assert [r.id for r in one.left_out] == ["WS601", "WS602"] and not any(r.both_taps for r in one.rules)
    assert one.check(_drop_session()) == []  # on one tap the WS6xx rules do not run
    two = Checker(select=["WS1", "WS6"], taps=["zmq", "ws"])
    assert not two.left_out and {"WS601", "WS602"} <= {r.id for r in two.rules}
    two.check(_drop_session())
    assert [f.rule_id for f in two.findings if f.rule_id.startswith("WS6")] == ["WS601"]
    assert two.ctx.messages == 6  # the context and the one-tap rules saw the zmq copies only
    assert not [f for f in two.findings if f.rule_id == "WS103"]  # the ws copies repeat no msg_id for them


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
    (f,) = Checker(rules=[ReconnectState()], taps=["zmq", "ws"]).check(R)
    assert f.rule_id == "WS602" and f.severity.label == "warning"
    assert "new session_id while the kernel was busy: 1 kernel message" in f.message
    assert "later than the front-end's 4000 ms timeout" in f.message


# ---------------------------------------------------------------------------------------- real proxy, real server


def _jupyter_server(tmp_path, token):
    import subprocess
    import sys
    from pathlib import Path

    from widgetspy.proxy.web import free_port, server_argv, wait_http

    port = free_port()
    argv = server_argv([str(Path(sys.executable).parent / "jupyter-server"), "--allow-root",
                        f"--ServerApp.root_dir={tmp_path}"], port, token)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/api", 60, proc, "jupyter-server")
    return proc, f"http://127.0.0.1:{port}"


def _api(url, method="GET", headers=None, body=None):
    import json
    import urllib.request

    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_real_proxy_never_writes_the_server_token_or_cookies(tmp_path):
    """Token in the URL, the Authorization header, a cookie and a message: none of it reaches the session
    (SIGINT of mitmdump: what was queued is written)."""
    import signal
    import uuid

    from websockets.sync.client import connect

    from widgetspy.codec.wsframes import decode, encode_v1
    from widgetspy.proxy.web import WsProxy, new_token
    from widgetspy.session import read_session

    token, xsrf = new_token(), uuid.uuid4().hex
    server, upstream = _jupyter_server(tmp_path, token)
    out = tmp_path / "taps"
    proxy = WsProxy(upstream, out).start()
    auth = {"Authorization": f"token {token}", "Cookie": f"_xsrf={xsrf}; other=plain"}
    try:
        kid = _api(f"{proxy.url}/api/kernels?token={token}", "POST", {**auth, "X-XSRFToken": xsrf}, b"{}")["id"]
        ws_url = f"{proxy.url.replace('http', 'ws')}/api/kernels/{kid}/channels?session_id=s1&token={token}"
        code = f"secret = {token!r}\nprint('token=' + secret, secret[::-1][::-1])"
        msg = Message({"msg_id": "exec-1", "msg_type": "execute_request", "session": "s1", "username": "u",
                       "date": "2026-01-01T00:00:00Z", "version": "5.4"}, {}, {},
                      {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                       "allow_stdin": False, "stop_on_error": True})
        with connect(ws_url, subprotocols=[V1_PROTOCOL], additional_headers=auth, open_timeout=60) as ws:
            ws.send(encode_v1(msg, "shell"))
            seen = set()
            while not {"execute_reply", "stream"} <= seen or "idle" not in seen:
                m = decode(ws.recv(timeout=60), False, V1_PROTOCOL).message
                if m.parent_header.get("msg_id") == "exec-1":
                    seen.add(m.msg_type)
                    if m.msg_type == "status" and m.content.get("execution_state") == "idle":
                        seen.add("idle")
        _api(f"{proxy.url}/api/kernels/{kid}", "DELETE", {**auth, "X-XSRFToken": xsrf})
        proxy.proc.send_signal(signal.SIGINT)  # mitmdump's own shutdown: the addon's done() writes what is queued
        proxy.proc.wait(30)
    finally:
        proxy.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    files = list(out.glob("*.jsonl"))
    assert len(files) == 1
    raw = files[0].read_bytes()
    for secret in (token, xsrf):
        assert secret.encode() not in raw
    header, records, warnings = read_session(files[0])
    assert not warnings and header.recorder["kernel_id"] == kid
    msgs = [r for r in records if isinstance(r, MessageRecord)]
    mine = [r for r in msgs if r.msg.msg_id == "exec-1" or r.msg.parent_header.get("msg_id") == "exec-1"]
    assert {"execute_request", "execute_reply", "stream", "status"} <= {r.msg_type for r in mine}
    assert "[redacted]" in next(r for r in mine if r.msg_type == "execute_request").msg.content["code"]
    connected = next(r for r in records if isinstance(r, EventRecord) and r.event == "ws_connected")
    assert connected.data["path"].endswith(("token=REDACTED", "token=[redacted]"))
    assert records[-1].event == "ws_recording_stopped" and records[-1].data["messages"] == len(msgs)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


def test_request_secrets_and_upstream_redaction():
    headers = [("Authorization", "token 0123456789abcdef"), ("Cookie", '_xsrf="2|abcdef12|3456"; theme=dark'),
               ("Host", "localhost:8888")]
    assert request_secrets("/lab?token=tttttttttt&x=1", headers) == ["tttttttttt", "0123456789abcdef", "2|abcdef12|3456"]
    assert request_secrets("/api/kernels", [("authorization", "Bearer short")]) == []
    assert redact_url("http://me:pw@host:8888/base?token=abc") == "http://REDACTED@host:8888/base?token=REDACTED"


def test_show_counts_a_two_tap_message_once_with_per_tap_copies(tmp_path):
    """A merged session: each message on both taps (a request the browser sent first, kernel replies and
    an IOPub message the ZMQ tap saw first and two browser tabs got), plus one message only the browser saw."""
    from click.testing import CliRunner

    from widgetspy.cli.show import show
    from widgetspy.session.files import SessionWriter
    from widgetspy.summary import summarize

    def rec(seq, tap, d, ch, m):
        return MessageRecord(seq, seq / 10, tap, d, ch, m)

    K, F = Direction.TO_KERNEL, Direction.TO_FRONTEND
    req, reply = msg("r1", "execute_request"), msg("r2", "execute_reply", "r1")
    upd, ws_only = msg("u1", "comm_msg", "r1", comm_id="c"), msg("w1", "comm_msg", comm_id="c")
    records = [
        rec(1, "ws", K, Channel.SHELL, req), rec(2, "zmq", K, Channel.SHELL, req),
        rec(3, "zmq", F, Channel.IOPUB, upd), rec(4, "ws", F, Channel.IOPUB, upd), rec(5, "ws", F, Channel.IOPUB, upd),
        rec(6, "zmq", F, Channel.SHELL, reply), rec(7, "ws", F, Channel.SHELL, reply),
        rec(8, "ws", K, Channel.SHELL, ws_only),
        EventRecord(9, 1.0, "ws_closed", {}),
    ]
    header = _hdr(["zmq", "ws"], 0.0)
    s = summarize(header, records)
    assert s.messages == 4 and s.on_both == 3 and s.by_tap == {"zmq": 3, "ws": 5}
    assert s.by_type[("comm_msg", F)] == 1 and s.by_type[("comm_msg", K)] == 1 and s.by_type[("execute_request", K)] == 1
    assert sum(s.by_channel.values()) == 4
    assert summarize(_hdr(["zmq"], 0.0), [r for r in records if getattr(r, "tap", "zmq") == "zmq"]).messages == 3

    path = tmp_path / "two.jsonl"
    with SessionWriter(path, header) as w:
        w.write_many(records)
    result = CliRunner().invoke(show, [str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "4 messages" in result.output
    assert "message copies per tap: zmq 3, ws 5" in result.output and "3 message(s) seen on both" in result.output


def test_literal_only_buffer_redaction():
    from widgetspy.proxy.redact import Redactor

    red = Redactor.for_recording(None, ["0123456789abcdef"], buffers="literals", environ={})
    m = Message({"msg_id": "a", "msg_type": "comm_msg"}, {}, {}, {"note": "token=abcdefghij"},
                [b"xx0123456789abcdefyy", b"token=not-scanned-here"])
    data, (written,) = red.encode([MessageRecord(1, 0.0, "ws", Direction.TO_KERNEL, Channel.SHELL, m)])
    assert b"0123456789abcdef" not in data and b"abcdefghij" not in data
    assert written.msg.buffers[0] == b"xx[redacted]yy"
    clean = Message({"msg_id": "b", "msg_type": "comm_msg"}, {}, {}, {}, [b"token=kept"])
    assert red.encode([MessageRecord(2, 0.0, "ws", Direction.TO_KERNEL, Channel.SHELL, clean)])[1][0].msg.buffers == [b"token=kept"]
