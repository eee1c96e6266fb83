#!/usr/bin/env python
"""widgetspy ZMQ benchmark: one real ipykernel, three ways to reach it.

Variants (each a different connection file pointing at the SAME kernel):
  direct     the kernel's own ports
  zproxy     a subprocess relaying every channel with libzmq's C `zmq.proxy`
             (pure forwarding: the reference for what a hop costs here)
  widgetspy  a subprocess running the real recorder (ZmqMitm + Recorder +
             SessionWriter), recording every message to a JSONL session file

Measured in every variant slot, by one jupyter_client BlockingKernelClient:
  exec      N lock-step execute("pass"): request -> execute_reply, -> iopub idle
  lock      N lock-step front-end comm `update` of an IntSlider, each waiting
            for its iopub idle (busy, echo_update, idle)
  k2c       one execute of `for i in ...: s.value = i`: comm_msg updates/s
            received by the client (send -> idle)
  k2c_1m    the same with a 1 MiB binary buffer per message (`img.value = ...`
            on an ipywidgets Image): kernel -> client messages/s
  c2k_1m    lock-step front-end `update` carrying a 1 MiB buffer; the kernel
            echoes it back (echo_update with the buffer): 2 MiB per update

Loss and duplication are counted on both sides: the kernel's observers must
see every update the client sent, the client must receive every update the
kernel made exactly once and in order, and (widgetspy) the session file must
hold exactly the messages the client sent and received, each once.

Between measurements the harness waits (untimed) until the widgetspy recorder
has written every message so far, so one test's capture backlog does not run
into the next; that wait is reported as the recorder lag, and the two streams
are also given "until recorded": messages / (stream time + recorder lag).

Variant order rotates every round; the report gives medians over rounds and
ratios median(variant) / median(direct) and / median(zproxy), and writes
everything (per-round values too) to benchmarks/results/*.json.

Usage: bench_zmq.py [--rounds N] [--quick] [--out FILE] [--profile DIR]
"""

from __future__ import annotations

import argparse
import ast
import collections
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VARIANTS = ("direct", "zproxy", "widgetspy")
MIB = 1 << 20
TIMEOUT = 60.0  # seconds to wait for any one expected message before failing

FULL = dict(warmup=30, exec=400, lock=1500, k2c=10000, k2c_1m=200, c2k_1m=100)
QUICK = dict(warmup=10, exec=50, lock=150, k2c=2000, k2c_1m=20, c2k_1m=10)


# =====================================================================
# Forwarders (run as subprocesses: `bench_zmq.py --serve KIND ...`)
# =====================================================================


def _load_json(path: str) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def _write_connection_file(path: str, back: dict[str, Any], ports: dict[str, int]) -> None:
    info = {
        "ip": back["ip"],
        "transport": "tcp",
        "key": back["key"],
        "signature_scheme": back.get("signature_scheme", "hmac-sha256"),
        "kernel_name": back.get("kernel_name", ""),
        **ports,
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)


def _usage_stats() -> dict[str, Any]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "minor_faults": ru.ru_minflt,
        "maxrss_mib": round(_vm_hwm_kib() / 1024, 1),
    }


def _vm_hwm_kib() -> int:
    """Peak RSS of this process image. (ru_maxrss would include the parent's peak
    from before the fork: Linux keeps it across exec.)"""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _serve_commands(sync: Any = None) -> None:
    """Answer the benchmark on stdin/stdout until STOP (or EOF).

    `SYNC n`: wait until the recorder (if any) has written n messages, answer
    `SYNCED <seconds waited> <CPU seconds this process has used so far>`.
    """
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "SYNC":
            waited = sync(int(arg)) if sync is not None else 0.0
            print(f"SYNCED {waited:.6f} {time.process_time():.6f}", flush=True)
        elif cmd == "STOP":
            return


def serve_zproxy(back_file: str, front_file: str) -> None:
    """The C reference: one `zmq.proxy` thread per channel, same socket options as widgetspy."""
    import zmq

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the benchmark; it closes our stdin
    back = _load_json(back_file)
    ctx = zmq.Context()
    shared = f"bench-{uuid.uuid4().hex[:12]}".encode()
    kinds = {
        "shell": (zmq.ROUTER, zmq.DEALER),
        "control": (zmq.ROUTER, zmq.DEALER),
        "stdin": (zmq.ROUTER, zmq.DEALER),
        "hb": (zmq.ROUTER, zmq.DEALER),
        "iopub": (zmq.XPUB, zmq.XSUB),
    }
    ports: dict[str, int] = {}
    for name, (fk, bk) in kinds.items():
        front, backs = ctx.socket(fk), ctx.socket(bk)
        front.linger = backs.linger = 0
        if name == "iopub":
            front.sndhwm = 0
            backs.rcvhwm = 0
        if name in ("shell", "stdin"):
            backs.setsockopt(zmq.IDENTITY, shared)  # input_request must find its way back
        elif bk == zmq.DEALER:
            backs.setsockopt(zmq.IDENTITY, f"bench-{name}-{uuid.uuid4().hex[:8]}".encode())
        ports[f"{name}_port"] = front.bind_to_random_port(f"tcp://{back['ip']}")
        backs.connect(f"tcp://{back['ip']}:{back[f'{name}_port']}")
        threading.Thread(target=_run_proxy, args=(front, backs), daemon=True).start()
    _write_connection_file(front_file, back, ports)
    print("READY", flush=True)
    _serve_commands()
    print(json.dumps(_usage_stats()), flush=True)
    os._exit(0)  # the proxy threads hold their sockets; nothing to flush


def _run_proxy(front: Any, back: Any) -> None:
    import zmq

    try:
        zmq.proxy(front, back)
    except zmq.ContextTerminated:
        pass


def serve_widgetspy(back_file: str, front_file: str, record_file: str, src: str | None = None) -> None:
    """The real recorder, wired like widgetspy.proxy.shim does it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = Path(src or REPO).resolve()
    sys.path.insert(0, str(root))
    import widgetspy
    from widgetspy import __version__

    if not Path(widgetspy.__file__).resolve().is_relative_to(root):
        raise SystemExit(f"imported widgetspy from {widgetspy.__file__}, not from {root}")
    from widgetspy.proxy.recorder import Recorder
    from widgetspy.proxy.zmq_mitm import PORT_KEYS, ZmqMitm
    from widgetspy.session.files import SessionWriter
    from widgetspy.session.format import FORMAT_VERSION
    from widgetspy.session.records import KERNEL_STARTED, MessageRecord, SessionHeader

    try:  # what KernelShim.run does first (a tree from before proxy/memory.py has no such step)
        from widgetspy.proxy.memory import keep_freed_memory
    except ImportError:
        pass
    else:
        keep_freed_memory()
    back = _load_json(back_file)
    t0 = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t0

    header = SessionHeader(
        format_version=FORMAT_VERSION,
        widgetspy_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        kernel={"name": back.get("kernel_name", "python3")},
        taps=["zmq"],
        recorder={"mode": "benchmark", "pid": os.getpid()},
    )
    recorder = Recorder(SessionWriter(record_file, header, overwrite=True), clock)
    # Count the messages written (listeners run after each batch's write) so the
    # benchmark can wait for the recorder to catch up between measurements.
    written = [0]
    cond = threading.Condition()

    def on_records(records: list[Any]) -> None:
        n = sum(1 for r in records if isinstance(r, MessageRecord))
        if n:
            with cond:
                written[0] += n
                cond.notify_all()

    def sync(n: int) -> float:
        t = time.perf_counter()
        with cond:
            if not cond.wait_for(lambda: written[0] >= n, timeout=TIMEOUT):
                print(f"recorder wrote {written[0]} of {n} messages in {TIMEOUT} s", file=sys.stderr, flush=True)
        return time.perf_counter() - t

    recorder.listeners.append(on_records)
    front = {"ip": back["ip"], "transport": "tcp", **{k: 0 for k in PORT_KEYS.values()}}
    mitm = ZmqMitm(front, back=back, on_batch=recorder.on_batch, clock=clock)
    mitm.bind()
    recorder.event(KERNEL_STARTED, pid=None)
    mitm.start()
    _write_connection_file(front_file, back, {k: mitm.front_info[k] for k in PORT_KEYS.values()})
    print("READY", flush=True)
    _serve_commands(sync)
    t_stop = time.perf_counter()
    mitm.stop()  # drains what the capture thread still has queued
    drain = time.perf_counter() - t_stop
    error = repr(mitm.capture_error) if mitm.capture_error is not None else None
    recorder.close("stopped")
    stats = _usage_stats()
    stats.update(
        drain_s=round(drain, 3),
        capture_error=error,
        messages=recorder.capture.message_count,
        unparsed=recorder.capture.unparsed_count,
    )
    print(json.dumps(stats), flush=True)


class Forwarder:
    """A forwarder subprocess: start, wait for READY (its connection file is written), stop."""

    def __init__(self, kind: str, back_file: str, workdir: str, tag: str, profile_dir: str | None = None, src: str | None = None):
        self.kind = kind
        self.front_file = os.path.join(workdir, f"{kind}-{tag}.json")
        self.record_file = os.path.join(workdir, f"{kind}-{tag}.jsonl") if kind == "widgetspy" else None
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--back", back_file, "--front", self.front_file]
        if self.record_file:
            argv += ["--record", self.record_file]
            if src:
                argv += ["--widgetspy-src", src]
        if profile_dir and kind == "widgetspy":
            out = os.path.join(profile_dir, f"py-spy-{kind}-{tag}.txt")
            argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--threads", "-r", "250", "-o", out, "--", *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stats: dict[str, Any] = {}
        for line in self.proc.stdout:  # (py-spy, when profiling, prints a line of its own first)
            if line.strip() == "READY":
                break
        else:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{kind} forwarder did not start (exit {self.proc.returncode})")

    def sync(self, n: int) -> tuple[float, float]:
        """Wait until the recorder (if any) has written n messages: (seconds it took, process CPU seconds)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"SYNC {n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line.startswith("SYNCED "):
            raise RuntimeError(f"{self.kind} forwarder: unexpected answer {line!r}")
        _, waited, cpu = line.split()
        return float(waited), float(cpu)

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("STOP\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            out, _ = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        self.stats = json.loads(lines[-1]) if lines else {}
        if self.proc.returncode not in (0, None):
            self.stats["exit_code"] = self.proc.returncode
        try:
            os.unlink(self.front_file)
        except FileNotFoundError:
            pass
        return self.stats


# =====================================================================
# The client
# =====================================================================


class Client:
    """A BlockingKernelClient that reads shell and iopub in arrival order and
    remembers the msg_id of everything it sent and received."""

    def __init__(self, connection_file: str):
        import zmq
        from jupyter_client.blocking import BlockingKernelClient

        kc = BlockingKernelClient(connection_file=connection_file)
        kc.load_connection_file()
        kc.start_channels(hb=False)
        self.kc = kc
        self.session = kc.session
        self.shell_sock = kc.shell_channel.socket
        self.poller = zmq.Poller()
        self.channels = {kc.shell_channel.socket: ("shell", kc.shell_channel), kc.iopub_channel.socket: ("iopub", kc.iopub_channel)}
        for sock in self.channels:
            self.poller.register(sock, zmq.POLLIN)
        self.buf: collections.deque[tuple[str, dict[str, Any], float]] = collections.deque()
        self.sent: list[str] = []
        self.received: list[str] = []

    def close(self) -> None:
        self.kc.stop_channels()

    # -- sending

    def execute(self, code: str, **kw: Any) -> str:
        msg_id = self.kc.execute(code, **kw)
        self.sent.append(msg_id)
        return msg_id

    def comm_update(self, comm_id: str, state: dict[str, Any], buffer_paths: list[Any] | None = None, buffers: list[bytes] | None = None) -> str:
        content = {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": buffer_paths or []}}
        msg = self.session.send(self.shell_sock, "comm_msg", content=content, buffers=buffers)
        msg_id = msg["header"]["msg_id"]
        self.sent.append(msg_id)
        return msg_id

    # -- receiving

    def recv(self, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any], float]:
        """The next message from shell or iopub: (channel, msg, perf_counter at arrival)."""
        if self.buf:
            return self.buf.popleft()
        events = self.poller.poll(int(timeout * 1000))
        if not events:
            raise TimeoutError(f"no message in {timeout} s")
        t = time.perf_counter()
        for sock, _ in events:
            name, chan = self.channels[sock]
            msg = chan.get_msg(timeout=0)
            self.received.append(msg["header"]["msg_id"])
            self.buf.append((name, msg, t))
        return self.buf.popleft()

    def until_idle(self, parent: str, timeout: float = TIMEOUT, on_msg: Any = None) -> tuple[float, float | None, dict | None]:
        """Read until iopub status idle for `parent`; returns (t_idle, t_reply, reply)."""
        t_reply = reply = None
        while True:
            name, msg, t = self.recv(timeout)
            if msg["parent_header"].get("msg_id") != parent:
                continue
            if name == "shell":
                t_reply, reply = t, msg
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                if reply is None and msg["parent_header"].get("msg_type") == "execute_request":
                    # the reply may still be in flight: keep reading until it arrives
                    while reply is None:
                        name2, msg2, t2 = self.recv(timeout)
                        if name2 == "shell" and msg2["parent_header"].get("msg_id") == parent:
                            t_reply, reply = t2, msg2
                        elif on_msg is not None:
                            on_msg(name2, msg2, t2)
                return t, t_reply, reply
            elif on_msg is not None:
                on_msg(name, msg, t)

    def run(self, code: str, **kw: Any) -> dict[str, Any]:
        mid = self.execute(code, **kw)
        _, _, reply = self.until_idle(mid)
        assert reply is not None
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel error for {code!r}: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return reply

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until an execute's iopub idle arrives: the iopub subscription has reached the kernel."""
        deadline = time.monotonic() + timeout
        while True:
            mid = self.execute("pass", store_history=False)
            try:
                while True:
                    name, msg, _ = self.recv(1.0)
                    if (
                        name == "iopub"
                        and msg["parent_header"].get("msg_id") == mid
                        and msg["msg_type"] == "status"
                        and msg["content"]["execution_state"] == "idle"
                    ):
                        return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError("iopub never became ready") from None

    def drain(self, quiet: float = 0.1) -> None:
        """Read whatever is still arriving (until `quiet` seconds pass with nothing)."""
        while True:
            try:
                self.recv(quiet)
            except TimeoutError:
                return

    def expr(self, expression: str) -> Any:
        reply = self.run("", store_history=False, user_expressions={"x": expression})
        res = reply["content"]["user_expressions"]["x"]
        if res.get("status") != "ok":
            raise RuntimeError(f"{expression!r}: {res.get('ename')}: {res.get('evalue')}")
        return ast.literal_eval(res["data"]["text/plain"])


# =====================================================================
# Kernel set-up and the measurements
# =====================================================================

SETUP = """
import os as _os
import ipywidgets as W
s = W.IntSlider(max=10**9)
img = W.Image(format="png")
_bench = {"s": 0, "img": 0}
def _bench_count_s(change):
    _bench["s"] += 1
def _bench_count_img(change):
    _bench["img"] += 1
s.observe(_bench_count_s, names="value")
img.observe(_bench_count_img, names="value")
_bench_tail = _os.urandom(%d - 8)
""" % MIB

KERNEL_STATE = "(_bench['s'], s.value, _bench['img'], int.from_bytes(img.value[:8], 'little'))"


def pct(values: list[float], q: float) -> float:
    vs = sorted(values)
    return vs[min(len(vs) - 1, max(0, round(q * (len(vs) - 1))))]


class Bench:
    def __init__(self, sizes: dict[str, int]):
        self.sizes = sizes
        self.next_value = 1  # every update in the run sets a new value, so every one fires the observer
        self.next_blob = 1
        self.tail = os.urandom(MIB - 8)

    def take(self, n: int) -> int:
        start = self.next_value
        self.next_value += n
        return start

    def take_blobs(self, n: int) -> int:
        start = self.next_blob
        self.next_blob += n
        return start

    def blob(self, i: int) -> bytes:
        return i.to_bytes(8, "little") + self.tail

    def run_variant(self, cl: Client, s_id: str, img_id: str, fwd: "Forwarder | None") -> tuple[dict[str, float], dict[str, Any]]:
        z = self.sizes
        res: dict[str, float] = {}
        checks: dict[str, Any] = {"problems": [], "recorder_lag_ms": {}}
        problems = checks["problems"]

        checks["forwarder_cpu_us_per_msg"] = {}
        last = [0.0, 0]  # forwarder CPU seconds, messages at the previous settle()

        def settle(test: str) -> None:
            """After each test (untimed): widgetspy, wait until the recorder has written every
            message so far, so one test's capture backlog does not run into the next, and keep
            how long that took; both forwarders, note the CPU they used per message in the test."""
            if fwd is None:
                return
            n = len(cl.sent) + len(cl.received)
            waited, cpu = fwd.sync(n)
            if fwd.record_file:
                checks["recorder_lag_ms"][test] = waited * 1e3
            if test != "warmup":  # warm-up includes the forwarder's start-up
                checks["forwarder_cpu_us_per_msg"][test] = (cpu - last[0]) / max(1, n - last[1]) * 1e6
            last[:] = [cpu, n]
        k0 = cl.expr(KERNEL_STATE)
        sent_s = sent_img = 0

        # ---- warm-up: a few of each kind
        for _ in range(z["warmup"]):
            cl.run("pass")
        v = self.take(z["warmup"])
        for i in range(v, v + z["warmup"]):
            cl.until_idle(cl.comm_update(s_id, {"value": i}))
        sent_s += z["warmup"]
        settle("warmup")

        # ---- exec: execute('pass') lock-step
        to_reply, to_idle = [], []
        for _ in range(z["exec"]):
            t0 = time.perf_counter()
            mid = cl.execute("pass")
            t_idle, t_reply, reply = cl.until_idle(mid)
            assert reply is not None and t_reply is not None
            to_reply.append(t_reply - t0)
            to_idle.append(t_idle - t0)
        res["exec_reply_p50_ms"] = pct(to_reply, 0.5) * 1e3
        res["exec_reply_p99_ms"] = pct(to_reply, 0.99) * 1e3
        res["exec_idle_p50_ms"] = pct(to_idle, 0.5) * 1e3
        res["exec_idle_p99_ms"] = pct(to_idle, 0.99) * 1e3
        settle("exec")

        # ---- lock: comm update -> echo_update -> idle, lock-step
        n = z["lock"]
        v = self.take(n)
        echoes: list[int] = []

        def on_echo(name: str, msg: dict, t: float) -> None:
            if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "echo_update":
                echoes.append(msg["content"]["data"]["state"]["value"])

        lat = []
        t_start = time.perf_counter()
        for i in range(v, v + n):
            t0 = time.perf_counter()
            t_idle, _, _ = cl.until_idle(cl.comm_update(s_id, {"value": i}), on_msg=on_echo)
            lat.append(t_idle - t0)
        elapsed = time.perf_counter() - t_start
        sent_s += n
        res["lock_per_s"] = n / elapsed
        res["lock_p50_ms"] = pct(lat, 0.5) * 1e3
        res["lock_p99_ms"] = pct(lat, 0.99) * 1e3
        if echoes != list(range(v, v + n)):
            problems.append(f"lock: {len(echoes)} echo_updates for {n} updates (or out of order)")
        settle("lock")

        # ---- k2c: kernel loop setting s.value, comm_msgs received per second
        n = z["k2c"]
        v = self.take(n)
        got: list[int] = []

        def on_update(name: str, msg: dict, t: float) -> None:
            if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == s_id:
                got.append(msg["content"]["data"]["state"]["value"])

        t0 = time.perf_counter()
        mid = cl.execute(f"for _i in range({v}, {v + n}): s.value = _i")
        t_idle, _, reply = cl.until_idle(mid, on_msg=on_update)
        res["k2c_per_s"] = len(got) / (t_idle - t0)
        elapsed_k2c = t_idle - t0
        sent_s += n  # the observer fires for kernel-side sets too
        if got != list(range(v, v + n)):
            in_order = len(set(got)) == len(got) and got == sorted(got) and set(got) <= set(range(v, v + n))
            text = f"k2c: client got {len(got)} of {n} updates ({len(set(got))} distinct, in order: {in_order})"
            if in_order:
                # The kernel's own IOPub socket (SNDHWM 1000, PUB semantics) drops what its peer
                # has not taken yet when its I/O thread or the peer falls behind. Both forwarders
                # set unlimited HWMs on their IOPub sockets, so they cannot drop; for widgetspy the
                # session file proves the hop forwarded all it got (check_recording). A note, not a failure.
                checks["kernel_iopub_drops"] = n - len(got)
                checks.setdefault("notes", []).append(text + ": dropped at the kernel's IOPub high-water mark")
            else:
                problems.append(text)
        settle("k2c")
        res["k2c_recorded_per_s"] = len(got) / (elapsed_k2c + checks["recorder_lag_ms"].get("k2c", 0.0) / 1e3)

        # ---- k2c_1m: kernel loop setting a 1 MiB Image.value
        n = z["k2c_1m"]
        b = self.take_blobs(n)
        gotb: list[int] = []

        def on_blob(name: str, msg: dict, t: float) -> None:
            if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == img_id:
                bufs = msg["buffers"]
                if len(bufs) != 1 or len(bufs[0]) != MIB:
                    problems.append(f"k2c_1m: message with buffers of sizes {[len(x) for x in bufs]}")
                gotb.append(int.from_bytes(bytes(bufs[0][:8]), "little") if bufs else -1)

        t0 = time.perf_counter()
        mid = cl.execute(f"for _i in range({b}, {b + n}): img.value = _i.to_bytes(8, 'little') + _bench_tail")
        t_idle, _, reply = cl.until_idle(mid, on_msg=on_blob)
        res["k2c_1m_per_s"] = len(gotb) / (t_idle - t0)
        elapsed_k2c_1m = t_idle - t0
        sent_img += n
        if gotb != list(range(b, b + n)):
            problems.append(f"k2c_1m: client got {len(gotb)} of {n} buffers ({len(set(gotb))} distinct)")
        settle("k2c_1m")
        res["k2c_1m_recorded_per_s"] = len(gotb) / (elapsed_k2c_1m + checks["recorder_lag_ms"].get("k2c_1m", 0.0) / 1e3)

        # ---- c2k_1m: front-end update with a 1 MiB buffer, echoed back, lock-step
        n = z["c2k_1m"]
        b = self.take_blobs(n)
        echob: list[int] = []

        def on_echo_blob(name: str, msg: dict, t: float) -> None:
            if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "echo_update":
                bufs = msg["buffers"]
                echob.append(int.from_bytes(bytes(bufs[0][:8]), "little") if bufs else -1)

        blobs = [self.blob(i) for i in range(b, b + n)]  # built before timing
        t_start = time.perf_counter()
        for blob in blobs:
            cl.until_idle(cl.comm_update(img_id, {}, [["value"]], [blob]), on_msg=on_echo_blob)
        elapsed = time.perf_counter() - t_start
        sent_img += n
        res["c2k_1m_per_s"] = n / elapsed
        if echob != list(range(b, b + n)):
            problems.append(f"c2k_1m: {len(echob)} echo_updates with buffers for {n} updates")
        settle("c2k_1m")

        # ---- the kernel side: did the observers see every update?
        k1 = cl.expr(KERNEL_STATE)
        checks["kernel_s_updates"] = k1[0] - k0[0]
        checks["kernel_img_updates"] = k1[2] - k0[2]
        checks["client_s_updates"] = sent_s
        checks["client_img_updates"] = sent_img
        if k1[0] - k0[0] != sent_s or k1[1] != self.next_value - 1:
            problems.append(f"kernel saw {k1[0] - k0[0]} slider updates of {sent_s} (value {k1[1]}, expected {self.next_value - 1})")
        if k1[2] - k0[2] != sent_img or k1[3] != self.next_blob - 1:
            problems.append(f"kernel saw {k1[2] - k0[2]} image updates of {sent_img} (last {k1[3]}, expected {self.next_blob - 1})")
        dup_recv = len(cl.received) - len(set(cl.received))
        if dup_recv:
            problems.append(f"client received {dup_recv} duplicate msg_ids")
        return res, checks


def check_recording(path: str, cl: Client) -> dict[str, Any]:
    """Compare the session file with what the client sent and received."""
    sys.path.insert(0, str(REPO))
    from widgetspy.message import Direction
    from widgetspy.session import MessageRecord, UnparsedRecord, open_session

    sf = open_session(path)
    to_k: collections.Counter[str] = collections.Counter()
    to_f: collections.Counter[str] = collections.Counter()
    n_msg = n_unparsed = 0
    buffers_bytes = 0
    for rec in sf:
        if isinstance(rec, MessageRecord):
            n_msg += 1
            buffers_bytes += sum(len(b) for b in rec.msg.buffers)
            (to_k if rec.direction is Direction.TO_KERNEL else to_f)[rec.msg_id or ""] += 1
        elif isinstance(rec, UnparsedRecord):
            n_unparsed += 1
    sent, recv = collections.Counter(cl.sent), collections.Counter(cl.received)
    out = {
        "records": n_msg,
        "unparsed": n_unparsed,
        "buffer_mib": round(buffers_bytes / MIB, 1),
        "file_mib": round(os.path.getsize(path) / MIB, 1),
        "client_sent": len(cl.sent),
        "client_received": len(cl.received),
        "missing_to_kernel": len(set(sent) - set(to_k)),
        "extra_to_kernel": len(set(to_k) - set(sent)),
        "missing_to_frontend": len(set(recv) - set(to_f)),
        "extra_to_frontend": len(set(to_f) - set(recv)),
        "duplicated": sum(c - 1 for c in (to_k + to_f).values() if c > 1),
        "warnings": sf.warnings,
    }
    out["ok"] = (
        n_msg == len(cl.sent) + len(cl.received)
        and not n_unparsed
        and not sf.warnings
        and not any(out[k] for k in ("missing_to_kernel", "extra_to_kernel", "missing_to_frontend", "extra_to_frontend", "duplicated"))
    )
    return out


# =====================================================================
# Orchestration and the report
# =====================================================================

# (key, label, higher is better, target for widgetspy: (against, bound) or None)
METRICS = [
    ("exec_reply_p50_ms", "exec -> reply p50 (ms)", False, ("direct", 1.10)),
    ("exec_idle_p50_ms", "exec -> idle p50 (ms)", False, ("direct", 1.10)),
    ("exec_idle_p99_ms", "exec -> idle p99 (ms)", False, None),
    ("lock_per_s", "comm lock-step (updates/s)", True, ("direct", 0.95)),
    ("lock_p50_ms", "comm lock-step p50 (ms)", False, None),
    ("k2c_per_s", "kernel->client updates/s", True, ("direct", 0.80)),
    ("k2c_recorded_per_s", "  same, until recorded (wspy)", True, None),
    ("k2c_1m_per_s", "1 MiB kernel->client msg/s", True, ("zproxy", 0.90)),
    ("k2c_1m_recorded_per_s", "  same, until recorded (wspy)", True, None),
    ("c2k_1m_per_s", "1 MiB client->kernel lock-step/s", True, ("zproxy", 0.90)),
]


def start_kernel(workdir: str) -> Any:
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.connection_file = os.path.join(workdir, "kernel.json")
    km.ip = "127.0.0.1"
    km.start_kernel(env={**os.environ, "IPYTHONDIR": os.path.join(workdir, "ipython")})
    return km


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = dict(QUICK if args.quick else FULL)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    workdir = tempfile.mkdtemp(prefix="widgetspy-bench-")
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    print(f"widgetspy ZMQ benchmark: {rounds} rounds x {len(VARIANTS)} variants, sizes {sizes}", flush=True)
    km = start_kernel(workdir)
    per_round: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    checks: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    fwd_stats: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    bench = Bench(sizes)
    t_run = time.perf_counter()
    try:
        cl = Client(km.connection_file)
        cl.wait_ready()
        cl.run(SETUP)
        s_id, img_id = cl.expr("(s.model_id, img.model_id)")
        cl.close()
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]
            parts = []
            for variant in order:
                fwd = None if variant == "direct" else Forwarder(variant, km.connection_file, workdir, f"r{r}", args.profile, args.widgetspy_src)
                try:
                    cl = Client(fwd.front_file if fwd else km.connection_file)
                    try:
                        cl.wait_ready()
                        res, chk = bench.run_variant(cl, s_id, img_id, fwd)
                        cl.drain()
                    finally:
                        cl.close()
                finally:
                    if fwd is not None:
                        fwd.stop()
                if fwd is not None:
                    fwd_stats[variant].append(fwd.stats)
                    if fwd.record_file:
                        rec = check_recording(fwd.record_file, cl)
                        chk["recording"] = rec
                        if not rec["ok"]:
                            chk["problems"].append(f"recording mismatch: {rec}")
                        if fwd.stats.get("capture_error"):
                            chk["problems"].append(f"capture error: {fwd.stats['capture_error']}")
                        os.unlink(fwd.record_file)
                per_round[variant].append(res)
                checks[variant].append(chk)
                flag = "OK" if not chk["problems"] else "PROBLEMS: " + "; ".join(chk["problems"])
                parts.append(
                    f"{variant} exec {res['exec_reply_p50_ms']:.2f}/{res['exec_idle_p50_ms']:.2f} ms, "
                    f"lock {res['lock_per_s']:.0f}/s, k2c {res['k2c_per_s']:.0f}/s, "
                    f"1M k2c {res['k2c_1m_per_s']:.0f}/s, 1M c2k {res['c2k_1m_per_s']:.0f}/s {flag}"
                )
            print(f"round {r + 1}/{rounds} [{time.perf_counter() - t_run:.0f} s]: " + " | ".join(parts), flush=True)
    finally:
        try:
            km.shutdown_kernel(now=False)
        except Exception:
            km.shutdown_kernel(now=True)
        km.cleanup_resources()
        shutil.rmtree(workdir, ignore_errors=True)
    return summarize(args, sizes, rounds, per_round, checks, fwd_stats, time.perf_counter() - t_run)


def summarize(args, sizes, rounds, per_round, checks, fwd_stats, wall) -> dict[str, Any]:
    import ipykernel
    import ipywidgets
    import jupyter_client
    import orjson
    import zmq

    medians = {v: {k: statistics.median(r[k] for r in per_round[v]) for k, *_ in METRICS} for v in VARIANTS}
    ratios = {
        v: {
            k: {"direct": medians[v][k] / medians["direct"][k], "zproxy": medians[v][k] / medians["zproxy"][k]}
            for k, *_ in METRICS
        }
        for v in VARIANTS
    }
    targets = []
    for key, label, higher, target in METRICS:
        if target is None:
            continue
        against, bound = target
        ratio = ratios["widgetspy"][key][against]
        met = ratio >= bound if higher else ratio <= bound
        targets.append({"metric": key, "label": label, "against": against, "bound": bound, "ratio": ratio, "met": met})
    problems = {v: [p for c in checks[v] for p in c["problems"]] for v in VARIANTS}
    notes = {v: [p for c in checks[v] for p in c.get("notes", [])] for v in VARIANTS}
    lag_tests = sorted({t for c in checks["widgetspy"] for t in c["recorder_lag_ms"]}, key=list(FULL).index)
    recorder_lag = {t: statistics.median(c["recorder_lag_ms"][t] for c in checks["widgetspy"]) for t in lag_tests}
    cpu_per_msg = {
        v: {t: statistics.median(c["forwarder_cpu_us_per_msg"][t] for c in checks[v]) for t in lag_tests if t != "warmup"}
        for v in ("zproxy", "widgetspy")
    }
    return {
        "benchmark": "bench_zmq",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "loadavg_end": os.getloadavg(), "python": platform.python_version()},
        "versions": {
            "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(),
            "jupyter_client": jupyter_client.__version__,
            "ipykernel": ipykernel.__version__,
            "ipywidgets": ipywidgets.__version__,
            "orjson": orjson.__version__,
        },
        "git": _git_rev(),
        "widgetspy_src": args.widgetspy_src,
        "rounds": rounds,
        "sizes": sizes,
        "wall_s": round(wall, 1),
        "medians": medians,
        "ratios": ratios,
        "targets": targets,
        "problems": problems,
        "notes": notes,
        "recorder_lag_ms_median": recorder_lag,
        "forwarder_cpu_us_per_msg_median": cpu_per_msg,
        "per_round": per_round,
        "checks": checks,
        "forwarder_stats": fwd_stats,
    }


def _git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except OSError:
        return None


def report(result: dict[str, Any]) -> str:
    med, rat = result["medians"], result["ratios"]
    rows = [("metric", "direct", "zproxy", "widgetspy", "zproxy/direct", "wspy/direct", "wspy/zproxy", "target (wspy)")]
    for key, label, higher, target in METRICS:
        tgt = ""
        if target:
            against, bound = target
            r = rat["widgetspy"][key][against]
            ok = r >= bound if higher else r <= bound
            tgt = f"{'>=' if higher else '<='} {bound:.2f}x {against}: {'met' if ok else 'MISSED'}"
        fmt = "{:.2f}" if key.endswith("_ms") else "{:.0f}"
        rows.append(
            (
                label,
                fmt.format(med["direct"][key]),
                fmt.format(med["zproxy"][key]),
                fmt.format(med["widgetspy"][key]),
                f"{rat['zproxy'][key]['direct']:.2f}",
                f"{rat['widgetspy'][key]['direct']:.2f}",
                f"{rat['widgetspy'][key]['zproxy']:.2f}",
                tgt,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 or i == len(r) - 1 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    for v in VARIANTS:
        probs = result["problems"][v]
        lines.append(f"{v}: " + ("no loss, no duplicates (client, kernel" + (", recording)" if v == "widgetspy" else ")") if not probs else f"{len(probs)} problems: " + "; ".join(probs)))
        for note in result["notes"][v]:
            lines.append(f"  note: {note}")
    lag = result["recorder_lag_ms_median"]
    if lag:
        lines.append(
            "widgetspy recorder lag (median ms from a test's last message at the client until the session file held every message): "
            + ", ".join(f"{t} {ms:.0f}" for t, ms in lag.items())
        )
    cpu = result["forwarder_cpu_us_per_msg_median"]
    lines.append(
        "forwarder process CPU per message carried (median us; 1 MiB tests: per message incl. the small ones around it): "
        + "; ".join(f"{v}: " + ", ".join(f"{t} {us:.0f}" for t, us in cpu[v].items()) for v in cpu)
    )
    ws = result["forwarder_stats"]["widgetspy"]
    recs = [c.get("recording", {}) for c in result["checks"]["widgetspy"]]
    if ws:
        lines.append(
            "widgetspy per round: recorded messages "
            + ", ".join(str(r.get("records")) for r in recs)
            + "; session file MiB "
            + ", ".join(str(r.get("file_mib")) for r in recs)
            + "; capture drain after stop s "
            + ", ".join(str(s.get("drain_s")) for s in ws)
            + "; CPU s (user+sys) "
            + ", ".join(f"{s.get('cpu_s')} ({s.get('user_s')}+{s.get('sys_s')})" for s in ws)
            + "; minor page faults "
            + ", ".join(str(s.get("minor_faults")) for s in ws)
            + "; peak RSS MiB "
            + ", ".join(str(s.get("maxrss_mib")) for s in ws)
        )
    zs = result["forwarder_stats"]["zproxy"]
    if zs:
        lines.append(
            "zproxy per round: CPU s (user+sys) "
            + ", ".join(f"{s.get('cpu_s')} ({s.get('user_s')}+{s.get('sys_s')})" for s in zs)
            + "; minor page faults "
            + ", ".join(str(s.get("minor_faults")) for s in zs)
            + "; peak RSS MiB "
            + ", ".join(str(s.get("maxrss_mib")) for s in zs)
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 5; 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of well under a minute")
    p.add_argument("--out", help="results JSON (default benchmarks/results/bench_zmq-<time>.json)")
    p.add_argument("--profile", metavar="DIR", help="run the widgetspy forwarder under py-spy, raw samples into DIR (skews its numbers)")
    p.add_argument(
        "--widgetspy-src",
        metavar="DIR",
        help="import widgetspy for the recorder from DIR (a patched copy of the tree) instead of this repository",
    )
    p.add_argument("--serve", choices=["zproxy", "widgetspy"], help=argparse.SUPPRESS)
    p.add_argument("--back", help=argparse.SUPPRESS)
    p.add_argument("--front", help=argparse.SUPPRESS)
    p.add_argument("--record", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve == "zproxy":
        serve_zproxy(args.back, args.front)
        return 0
    if args.serve == "widgetspy":
        serve_widgetspy(args.back, args.front, args.record, args.widgetspy_src)
        return 0
    result = run(args)
    out = Path(args.out) if args.out else HERE / "results" / f"bench_zmq-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print()
    print(f"medians over {result['rounds']} rounds ({result['wall_s']:.0f} s); ratios are median(variant)/median(reference) from this run")
    print(report(result))
    print(f"\nresults: {out}")
    return 0 if not any(result["problems"][v] for v in VARIANTS if v != "direct") else 1


if __name__ == "__main__":
    sys.exit(main())
