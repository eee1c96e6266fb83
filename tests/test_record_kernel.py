"""`widgetspy record --kernel python3`: a real ipykernel behind the proxy, real clients."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
from jupyter_client import BlockingKernelClient

from widgetspy.demo import play
from widgetspy.frontend import FrontendClient
from widgetspy.message import Channel, Direction
from widgetspy.session import EventRecord, MessageRecord, read_session

pytestmark = pytest.mark.kernel


class CountingClient:
    """A BlockingKernelClient whose Session notes every msg_id it sends and receives."""

    def __init__(self, connection_file):
        self.kc = BlockingKernelClient(connection_file=str(connection_file))
        self.kc.load_connection_file()
        self.sent: list[str] = []
        self.received: list[tuple[str, str]] = []  # (msg_id, msg_type)
        session = self.kc.session
        send, deserialize = session.send, session.deserialize

        def counting_send(*args, **kwargs):
            msg = send(*args, **kwargs)
            self.sent.append(msg["header"]["msg_id"])
            return msg

        def counting_deserialize(*args, **kwargs):
            msg = deserialize(*args, **kwargs)
            self.received.append((msg["header"]["msg_id"], msg["header"]["msg_type"]))
            return msg

        session.send = counting_send
        session.deserialize = counting_deserialize


def messages(records, direction=None, channel=None):
    return [
        r
        for r in records
        if isinstance(r, MessageRecord)
        and (direction is None or r.direction is direction)
        and (channel is None or r.channel is channel)
    ]


def events(records, name):
    return [r for r in records if isinstance(r, EventRecord) and r.event == name]


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- one widget session


@pytest.fixture(scope="module")
def widget_session(tmp_path_factory):
    """The demo's widget story, recorded, with both sides of the hop counted."""
    from widgetspy.proxy.process import RecorderProcess

    out = tmp_path_factory.mktemp("rec") / "widgets.jsonl"
    with RecorderProcess(out) as rec:
        counting = CountingClient(rec.connection_file)
        key = json.loads(rec.connection_file.read_text())["key"]
        cf_mode = stat.S_IMODE(rec.connection_file.stat().st_mode)
        fe = FrontendClient(str(rec.connection_file), client=counting.kc)
        play(fe, lambda s: None)
        status = rec.wait()
    header, records, warnings = read_session(out)
    # Everything the kernel sent was forwarded before the recorder exited: wait
    # until the client has read all of it (the recording tells us what to expect).
    expected = {r.msg_id for r in messages(records, Direction.TO_FRONTEND)}

    def drained():
        fe.drain_iopub()
        return expected <= {mid for mid, _ in counting.received}

    wait_until(drained, what="the client to receive every recorded message")
    fe.close()
    return {
        "path": out, "header": header, "records": records, "warnings": warnings, "client": counting,
        "key": key, "status": status, "cf_mode": cf_mode,
    }


def test_everything_the_client_saw_is_recorded_in_order_and_nothing_else(widget_session):
    records, client = widget_session["records"], widget_session["client"]
    to_kernel = [r.msg_id for r in messages(records, Direction.TO_KERNEL)]
    to_frontend = [r.msg_id for r in messages(records, Direction.TO_FRONTEND)]
    assert to_kernel == client.sent  # same messages, same order
    received = [mid for mid, _ in client.received]
    assert sorted(to_frontend) == sorted(received) and len(set(received)) == len(received)
    # per channel, the order the client received is the order recorded
    for channel in (Channel.IOPUB, Channel.SHELL, Channel.CONTROL):
        rec_ids = [r.msg_id for r in messages(records, Direction.TO_FRONTEND, channel)]
        assert [m for m in received if m in set(rec_ids)] == rec_ids
    assert widget_session["warnings"] == []
    assert widget_session["status"] == 0


def test_widget_messages_carry_the_right_parents(widget_session):
    records = widget_session["records"]
    by_id = {r.msg_id: r for r in messages(records)}
    opens = [r for r in messages(records, Direction.TO_FRONTEND) if r.msg_type == "comm_open"]
    slider = next(r for r in opens if r.msg.comm_data["state"]["_model_name"] == "IntSliderModel")
    request = by_id[slider.msg.parent_id]
    assert request.msg_type == "execute_request" and "IntSlider" in request.msg.content["code"]
    assert slider.msg.metadata["version"].startswith("2.")

    updates = [
        r for r in messages(records, Direction.TO_KERNEL)
        if r.msg_type == "comm_msg" and r.msg.comm_id == slider.msg.comm_id and r.msg.comm_method == "update"
    ]
    assert [u.msg.comm_data["state"]["value"] for u in updates] == [10, 20, 30, 45, 1000]
    for u in updates:
        echoes = [
            r for r in messages(records, Direction.TO_FRONTEND)
            if r.msg.parent_id == u.msg_id and r.msg.comm_method == "echo_update"
        ]
        assert [e.msg.comm_data["state"] for e in echoes] == [u.msg.comm_data["state"]]
    clamp = [
        r.msg.comm_data["state"] for r in messages(records, Direction.TO_FRONTEND)
        if r.msg.parent_id == updates[-1].msg_id and r.msg.comm_method == "update"
    ]
    assert clamp == [{"value": 100}]  # the kernel clamps 1000 to max=100 after the echo

    displays = [r for r in messages(records, Direction.TO_FRONTEND) if r.msg_type == "display_data"]
    assert displays and all(by_id[d.msg.parent_id].msg_type == "execute_request" for d in displays)
    image = next(r for r in opens if r.msg.comm_data["state"]["_model_name"] == "ImageModel")
    assert image.msg.comm_data["buffer_paths"] == [["value"]] and image.msg.buffers[0].startswith(b"\x89PNG")


def test_recording_has_no_key_and_is_owner_only(widget_session):
    data = widget_session["path"].read_bytes()
    assert widget_session["key"].encode() not in data
    assert b"signature" not in data
    assert stat.S_IMODE(widget_session["path"].stat().st_mode) == 0o600
    assert widget_session["cf_mode"] == 0o600


def test_header_and_lifecycle_events(widget_session):
    header, records = widget_session["header"], widget_session["records"]
    assert header.kernel["name"] == "python3" and header.kernel["implementation"] == "ipython"
    assert header.kernel["protocol_version"].startswith("5.")
    assert header.taps == ["zmq"] and header.recorder["mode"] == "record"
    assert records[0].event == "kernel_started"
    (exited,) = events(records, "kernel_exited")
    assert exited.data["exit_code"] == 0 and exited.data["cause"] == "shutdown_request"
    assert records[-1].event == "recording_stopped"
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


# --------------------------------------------------------------------------- clients, stdin, interrupt


def test_two_clients_and_stdin_goes_to_the_client_that_asked(recorder):
    rec = recorder()
    a = FrontendClient(str(rec.connection_file))
    b = FrontendClient(str(rec.connection_file))
    assert a.execute("x = 41").reply["content"]["status"] == "ok"
    result = b.execute("y = input('name? ')\nprint('hi', y, x + 1)", stdin_reply="bob")
    assert result.stdin[0]["content"]["prompt"] == "name? "
    assert result.stdout == "hi bob 42\n"
    with pytest.raises(Exception):  # a never got an input_request
        a.kc.get_stdin_msg(timeout=0.2)
    a.close(), b.close()
    assert rec.stop() == 0
    records = read_session(rec.output)[1]
    assert len(events(records, "client_connected")) == 2
    input_requests = [r for r in messages(records, channel=Channel.STDIN) if r.msg_type == "input_request"]
    assert input_requests[0].peer == b.kc.session.session
    assert events(records, "kernel_exited")[0].data["cause"] == "stopped by widgetspy"


def test_pipelined_requests_all_answered(recorder):
    """Bursts of requests sent without waiting (as a notebook server or a replay
    does) each get their reply through the proxy, and the recording holds every
    one. ipykernel 7.0-7.3 lose one of these within a few hundred bursts with or
    without widgetspy (see pyproject.toml), which this test would catch."""
    rec = recorder()
    client = CountingClient(rec.connection_file)
    kc = client.kc
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    sent: list[str] = []
    for burst in range(600):
        ids = [kc.kernel_info() if i % 2 else kc.comm_info() for i in range(4)]
        sent += ids
        pending = set(ids)
        while pending:
            try:
                reply = kc.get_shell_msg(timeout=10)
            except Exception:
                raise AssertionError(f"burst {burst}: {len(pending)} of 4 requests never answered") from None
            pending.discard(reply["parent_header"]["msg_id"])
    kc.stop_channels()
    assert rec.stop() == 0
    records = read_session(rec.output)[1]
    requests = {r.msg_id for r in messages(records, Direction.TO_KERNEL, Channel.SHELL)}
    replies = {r.msg.parent_id for r in messages(records, Direction.TO_FRONTEND, Channel.SHELL)}
    assert set(sent) <= requests and set(sent) <= replies


def test_a_reconnect_with_the_same_session_takes_over_its_identity(recorder):
    """jupyter_server opens a browser's new kernel websocket (a reconnect, or JupyterLab's fallback to the
    legacy framing) with the page's session id as the ZMQ identity, sometimes before the old connection's
    sockets are closed. A real ipykernel hands the identity over to the newest connection (ROUTER_HANDOVER);
    so must the proxy, or the new connection's requests are never delivered."""
    rec = recorder()
    old, new = BlockingKernelClient(connection_file=str(rec.connection_file)), None
    old.load_connection_file()
    old.start_channels()
    try:
        old.wait_for_ready(timeout=30)
        new = BlockingKernelClient(connection_file=str(rec.connection_file))
        new.load_connection_file()
        new.session.session = old.session.session  # the same identity on shell, control and stdin
        new.start_channels()
        new.shell_channel.socket  # connected while the old client's sockets still are
        new.control_channel.socket
        old.stop_channels()
        for channel in ("shell", "control"):
            ch = getattr(new, f"{channel}_channel")
            msg = new.session.msg("kernel_info_request")
            ch.send(msg)
            reply = getattr(new, f"get_{channel}_msg")(timeout=10)
            assert reply["parent_header"]["msg_id"] == msg["header"]["msg_id"], channel
    finally:
        old.stop_channels()
        if new is not None:
            new.stop_channels()
    assert rec.stop() == 0


def test_interrupt_request_stops_a_sleeping_loop(recorder, frontend):
    rec = recorder()
    fe = frontend(rec.connection_file)
    msg_id = fe.kc.execute("import time\nfor i in range(600):\n    time.sleep(0.1)")
    wait_until(lambda: any(m["msg_type"] == "execute_input" for m in fe.drain_iopub()), what="the loop to start")
    reply = fe.interrupt(msg_id).reply  # interrupt_request on control (again if it came too early)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert fe.execute("print('still alive')").stdout == "still alive\n"
    rec.stop()
    records = read_session(rec.output)[1]
    assert any(r.msg_type == "interrupt_request" and r.channel is Channel.CONTROL for r in messages(records))


# --------------------------------------------------------------------------- restart and death


def test_restart_request_restarts_the_kernel_and_the_session_goes_on(recorder, frontend):
    rec = recorder()
    fe = frontend(rec.connection_file)
    fe.execute("x = 1")
    first_session = fe.received[-1]["header"]["session"]
    fe.shutdown(restart=True)
    fe.kc.wait_for_ready(timeout=30)
    result = fe.execute("print('x' in dir())")
    assert result.stdout == "False\n"  # a fresh kernel
    assert result.iopub[0]["header"]["session"] != first_session
    assert rec.stop() == 0
    records = read_session(rec.output)[1]
    (restarted,) = events(records, "kernel_restarted")
    assert restarted.data["previous_exit_code"] == 0 and restarted.data["pid"]
    assert events(records, "kernel_exited")[0].seq > restarted.seq


def test_kernel_killed_with_sigkill_is_recorded_and_the_recorder_exits_with_its_status(recorder, frontend):
    rec = recorder()
    fe = frontend(rec.connection_file)
    fe.execute("1 + 1")
    pid = events(read_session(rec.output)[1], "kernel_started")[0].data["pid"]
    os.kill(pid, signal.SIGKILL)
    assert rec.wait() == 128 + signal.SIGKILL
    records = read_session(rec.output)[1]
    (exited,) = events(records, "kernel_exited")
    assert exited.data == {"exit_code": -9, "signal": "SIGKILL", "expected": False, "cause": "died"}
    assert records[-1].event == "recording_stopped"


def test_recorder_killed_mid_stream_leaves_a_readable_file_and_no_kernel(recorder, frontend):
    rec = recorder()
    fe = frontend(rec.connection_file)
    fe.execute("import ipywidgets as W\ns = W.IntSlider(max=10**9)")
    pid = events(read_session(rec.output)[1], "kernel_started")[0].data["pid"]
    fe.kc.execute("for i in range(200000): s.value = i")
    wait_until(lambda: sum(1 for m in fe.drain_iopub() if m["msg_type"] == "comm_msg") > 2000, what="the update stream")
    rec.signal(signal.SIGKILL)
    rec.wait()
    header, records, warnings = read_session(rec.output)  # every complete line is valid
    assert header.kernel["name"] == "python3"
    assert len(messages(records)) > 2000 and len(warnings) <= 1
    # the kernel notices its parent is gone and exits by itself
    wait_until(lambda: not _alive(pid), timeout=30, what="the orphaned kernel to exit")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie counts as gone
        return fh.read().split(")")[-1].split()[0] != "Z"


# --------------------------------------------------------------------------- bad input


def run_widgetspy(*args, **kw):
    return subprocess.run([sys.executable, "-m", "widgetspy", *args], capture_output=True, text=True, timeout=60, **kw)


def test_missing_kernelspec_is_a_one_line_error(tmp_path):
    result = run_widgetspy("record", "--kernel", "no-such-kernel", "-o", str(tmp_path / "s.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no kernelspec named 'no-such-kernel'" in result.stderr and "python3" in result.stderr
    assert not (tmp_path / "s.jsonl").exists()


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cf = tmp_path / "kernel.json"
        cf.write_text(json.dumps({
            "ip": "127.0.0.1", "transport": "tcp", "key": "k", "signature_scheme": "hmac-sha256",
            "shell_port": port, "iopub_port": 0, "stdin_port": 0, "control_port": 0, "hb_port": 0,
        }))
        result = subprocess.run(
            [sys.executable, "-m", "widgetspy.proxy.shim", "-f", str(cf), "--kernel", "python3",
             "--out-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == f"widgetspy: port {port} (shell) on 127.0.0.1 is already in use"


def test_curve_encrypted_connection_is_refused_clearly(tmp_path):
    cf = tmp_path / "kernel.json"
    cf.write_text(json.dumps({
        "ip": "127.0.0.1", "transport": "tcp", "key": "k", "signature_scheme": "hmac-sha256",
        "shell_port": 0, "iopub_port": 0, "stdin_port": 0, "control_port": 0, "hb_port": 0,
        "curve_publickey": "x" * 40, "curve_secretkey": "y" * 40,
    }))
    result = subprocess.run(
        [sys.executable, "-m", "widgetspy.proxy.shim", "-f", str(cf), "--kernel", "python3", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("start the kernel without transport encryption")
    assert result.stderr.strip().count("\n") == 0


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "keep.jsonl"
    out.write_text("precious\n")
    result = run_widgetspy("record", "-o", str(out))
    assert result.returncode == 2 and "already exists" in result.stderr
    assert out.read_text() == "precious\n"


@pytest.mark.parametrize("content", [b"", b"garbage\x00\xff", b'{"format": "widgetspy-session", "format_version": 7}\n'])
def test_show_rejects_what_is_not_a_session(tmp_path, content):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = run_widgetspy("show", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("widgetspy: error:") and result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


def test_show_summarizes_the_recording(widget_session):
    result = run_widgetspy("show", str(widget_session["path"]))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "IntSliderModel" in out and "ImageModel" in out
    assert "no.such.target" in out and "kernel_exited" in out
    n = len(messages(widget_session["records"]))
    assert f"{n} messages" in out


def test_frames_that_do_not_parse_are_forwarded_and_logged(recorder, frontend):
    import zmq

    rec = recorder()
    info = json.loads(rec.connection_file.read_text())
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    raw.connect(f"tcp://127.0.0.1:{info['shell_port']}")
    raw.send_multipart([b"not a jupyter message", b"\x00\x01\x02"])
    raw.send_multipart([b"<IDS|MSG>", b"sig", b"{broken json", b"{}", b"{}", b"{}"])
    fe = frontend(rec.connection_file)  # the kernel keeps serving real clients
    assert fe.execute("print(6 * 7)").stdout == "42\n"
    raw.close()
    ctx.term()
    rec.stop()
    records = read_session(rec.output)[1]
    unparsed = [r for r in records if type(r).__name__ == "UnparsedRecord"]
    assert len(unparsed) == 2
    assert unparsed[0].reason == "no <IDS|MSG> delimiter frame"
    assert unparsed[1].reason.startswith("header is not JSON: ")
    assert all(u.channel is Channel.SHELL and u.direction is Direction.TO_KERNEL for u in unparsed)
    # the raw frames as the proxy got them: the client identity the ROUTER added, then ours
    assert "6e 6f 74 20 61" in unparsed[0].preview and unparsed[0].frames == 3
