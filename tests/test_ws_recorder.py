"""The websocket tap's two processes: the addon's stream to the recorder process (sans-IO), and real
mitmdump runs for the failure modes: SIGTERM loses nothing, a killed recorder does not stop the forwarding."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from widgetspy.codec.wsframes import V1_PROTOCOL, encode_v1
from widgetspy.message import Message
from widgetspy.proxy import ws_wire
from widgetspy.proxy.ws_recorder import WsSessions
from widgetspy.session import read_session
from widgetspy.session.records import EventRecord, MessageRecord


def _msg(i: int, buffer: bytes = b"") -> bytes:
    m = Message({"msg_id": f"m{i}", "msg_type": "comm_msg", "session": "s", "username": "u",
                 "date": "2026-01-01T00:00:00Z", "version": "5.4"}, {}, {},
                {"comm_id": "c", "data": {"method": "update", "state": {"value": i}, "buffer_paths": [["b"]]}},
                [buffer])
    return encode_v1(m, "shell")


def _pieces(conn_items: list[tuple]) -> bytes:
    out = []
    for item in conn_items:
        if item[0] == ws_wire.MESSAGE:
            _, conn, from_client, is_text, t, payload = item
            out += [ws_wire.encode_message(conn, from_client, is_text, t, len(payload)), payload]
        else:
            out.append(ws_wire.encode_event(item[0], list(item[1:])))
    return b"".join(out)


def test_wire_items_come_back_whole_and_in_order_from_any_pieces():
    items = [
        (ws_wire.SECRETS, ["0123456789abcdef"]),
        (ws_wire.OPENED, 1, "/api/kernels/k1/channels?session_id=s&token=0123456789abcdef", V1_PROTOCOL, 0.5),
        *[(ws_wire.MESSAGE, 1, i % 2 == 0, False, 1.0 + i, _msg(i, os.urandom(i * 997))) for i in range(20)],
        (ws_wire.MESSAGE, 1, False, True, 30.0, b'{"text": "\xc3\xa9"}'),
        (ws_wire.MESSAGE, 1, True, False, 31.0, b""),
        (ws_wire.CLOSED, 1, 1000, "", "client", 40.0),
        (ws_wire.REFUSED, "/api/kernels/k2/channels", 403, 41.0),
    ]
    data = _pieces(items)
    rng = random.Random(7)
    dec = ws_wire.WireDecoder()
    got = []
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 3, 17, 4096, 100_000])
        got += dec.feed(data[pos:pos + step])
        pos += step
    assert got == items and dec.pending == 0
    dec.feed(data[:10])
    assert dec.pending == 10  # a stream cut inside an item: held back, and reported by the recorder
    with pytest.raises(ws_wire.WireError):
        ws_wire.WireDecoder().feed(b"\x01\x00\x00\x00\x09x")


def test_recorder_sessions_redact_learned_secrets_before_writing(tmp_path):
    secret = "0123456789abcdef"
    s = WsSessions(tmp_path, "http://me:pw@host/", 0.0, 4242)
    s.batch([
        (ws_wire.SECRETS, [secret]),
        (ws_wire.OPENED, 1, f"/api/kernels/k1/channels?session_id=s&token={secret}", V1_PROTOCOL, 0.5),
        (ws_wire.MESSAGE, 1, True, False, 1.0, _msg(1, secret.encode())),
    ])
    s.close()
    (path,) = tmp_path.glob("*-ws-k1-4242.jsonl")
    assert secret.encode() not in path.read_bytes()
    header, records, warnings = read_session(path)
    assert not warnings and header.recorder["upstream"] == "http://REDACTED@host/"
    assert [type(r).__name__ for r in records] == ["EventRecord", "MessageRecord", "EventRecord"]


# ---------------------------------------------------------------- real mitmdump


def _server() -> int:
    import websockets

    ready = threading.Event()
    port = []

    async def handler(ws) -> None:
        async for m in ws:
            if isinstance(m, str) and m == "END":
                await ws.send("END")
            elif ws.request.path.startswith("/echo"):
                await ws.send(m)

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=[V1_PROTOCOL], compression=None,
                                    max_size=None) as srv:
            port.append(srv.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.Future()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    assert ready.wait(10)
    return port[0]


def _recorder_pid(mitm_pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{mitm_pid}/task/{mitm_pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("no recorder process")


def _connect(proxy_url: str, kind: str, kernel: str):
    from websockets.sync.client import connect

    url = f"{proxy_url.replace('http', 'ws')}/{kind}/api/kernels/{kernel}/channels?session_id={uuid.uuid4().hex}"
    return connect(url, subprotocols=[V1_PROTOCOL], compression=None, max_size=None, open_timeout=30)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_mitmdump_loses_nothing(tmp_path, sig):
    """Every message sent before the signal is in the session, in order, with increasing times, and the
    recorder process is gone when mitmdump is."""
    from widgetspy.proxy.web import WsProxy

    port = _server()
    out = tmp_path / "taps"
    proxy = WsProxy(f"http://127.0.0.1:{port}", out, log=tmp_path / "mitm.log").start()
    n = 3000
    try:
        rec_pid = _recorder_pid(proxy.proc.pid)
        with _connect(proxy.url, "sink", "k1") as ws:
            for i in range(n):
                ws.send(_msg(i, b"\x01" * (i % 50) * 100))
            ws.send("END")
            assert ws.recv(timeout=60) == "END"  # forwarded: the hooks have queued every message
            proxy.proc.send_signal(sig)  # at once: most of it is still in the addon's queue, the pipe or the recorder
            assert proxy.proc.wait(60) is not None
    finally:
        proxy.stop()
    assert not Path(f"/proc/{rec_pid}").exists()
    (path,) = out.glob("*.jsonl")
    header, records, warnings = read_session(path)
    assert not warnings
    msgs = [r for r in records if isinstance(r, MessageRecord)]
    assert [r.msg.msg_id for r in msgs] == [f"m{i}" for i in range(n)]
    assert all(a.t <= b.t for a, b in zip(msgs, msgs[1:]))
    assert records[-1].event == "ws_recording_stopped" and records[-1].data["messages"] == n
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


@pytest.mark.timeout(120)
def test_killed_recorder_forwarding_goes_on_and_the_failure_is_reported(tmp_path):
    from widgetspy.proxy.web import WsProxy

    port = _server()
    out = tmp_path / "taps"
    log = tmp_path / "mitm.log"
    proxy = WsProxy(f"http://127.0.0.1:{port}", out, log=log).start()
    try:
        rec_pid = _recorder_pid(proxy.proc.pid)
        with _connect(proxy.url, "echo", "k1") as ws:
            for i in range(100):
                ws.send(_msg(i))
                assert ws.recv(timeout=30) == _msg(i)
            time.sleep(0.2)  # the batch timer has sent them
            os.kill(rec_pid, signal.SIGKILL)
            deadline = time.monotonic() + 10  # reported as soon as it dies, before any further message
            while b"recording stopped" not in log.read_bytes() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert b"recording stopped" in log.read_bytes()
            for i in range(100, 3000):  # the browser notices nothing: every echo comes back, in order
                ws.send(_msg(i, b"\x02" * 1000))
                assert ws.recv(timeout=30) == _msg(i, b"\x02" * 1000)
        with _connect(proxy.url, "echo", "k2") as ws:  # a new kernel socket is forwarded too
            ws.send(_msg(0))
            assert ws.recv(timeout=30) == _msg(0)
        assert proxy.proc.poll() is None
    finally:
        code = proxy.stop()
    text = log.read_text()
    assert "websocket recording stopped: the recorder process exited (status -9)" in text, text
    assert "traffic is still forwarded" in text
    assert code in (0, -signal.SIGTERM), text
    (path,) = out.glob("*.jsonl")  # what the recorder had: whole lines, the first 100 messages
    header, records, warnings = read_session(path)
    msgs = [r for r in records if isinstance(r, MessageRecord)]
    assert [r.msg.msg_id for r in msgs] == [f"m{i // 2}" for i in range(200)]  # each one in and echoed out
    assert not any(isinstance(r, EventRecord) and r.event == "ws_recording_stopped" for r in records)


def test_pipe_writes_wait_for_a_slow_reader_and_give_up_on_a_stuck_or_gone_one():
    from widgetspy.proxy.ws_addon import RecorderGone, write_all

    r, w = os.pipe()
    os.set_blocking(w, False)
    pieces = [os.urandom(300_000) for _ in range(10)]  # more than the pipe holds
    got = bytearray()

    def slow_reader() -> None:
        while chunk := os.read(r, 65536):
            got.extend(chunk)
            time.sleep(0.001)

    t = threading.Thread(target=slow_reader)
    t.start()
    write_all(w, pieces, timeout=5)  # waits (back-pressure), loses nothing
    os.close(w)
    t.join()
    os.close(r)
    assert bytes(got) == b"".join(pieces)

    r, w = os.pipe()
    os.set_blocking(w, False)
    t0 = time.monotonic()
    with pytest.raises(RecorderGone, match="took nothing"):
        write_all(w, pieces, timeout=0.3)  # nobody reads
    assert time.monotonic() - t0 < 3
    os.close(r)
    with pytest.raises(RecorderGone, match="gone"):
        write_all(w, pieces, timeout=5)
    os.close(w)


@pytest.mark.parametrize("command", [[], ["--", "jupyter", "lab"]], ids=["proxy-only", "with-server"])
def test_record_web_on_a_port_in_use_is_a_one_line_error(tmp_path, command):
    """mitmdump cannot listen there; the readiness check must not mistake the other listener for it."""
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        upstream = [] if command else ["--upstream", "http://127.0.0.1:9"]
        res = subprocess.run([sys.executable, "-m", "widgetspy", "record", "--web", *upstream, "--listen",
                              f"127.0.0.1:{port}", "-o", str(tmp_path / "out"), *command],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"widgetspy: error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "open:" not in res.stdout
