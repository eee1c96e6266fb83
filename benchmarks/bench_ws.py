#!/usr/bin/env python
"""widgetspy websocket benchmark: direct vs mitmdump vs widgetspy's websocket recorder.

One `websockets` server (compression off) stands in for jupyter_server's kernel
channels endpoint: it accepts the `v1.kernel.websocket.jupyter.org` subprotocol
on `/api/kernels/<id>/channels`; under `/echo/...` it echoes every message,
under `/sink/...` it counts them and answers the count when it gets a text
"END". Frames are real v1 kernel frames (a widget `comm_msg` update: 1 buffer
of 0 B for "small", 1 MiB for "1 MB"), so the recorder decodes and writes every
one as it would in a session.

Variants (all in one run, order rotated per round):
  direct     the client talks to the server
  mitmdump   `mitmdump --mode reverse:...` with no addon (mitmproxy's own cost)
  widgetspy  the same mitmdump with `-s widgetspy/proxy/ws_addon.py`: decodes,
             writes a session line per message, trims flow.websocket.messages

Measured per variant and round: round-trip time of N lock-step echoes (p50,
p99), one-way throughput client -> server of small and 1 MB messages, and the
proxy's RSS (with its recorder process) after a long connection (default 200 MB of 1 MB messages, sampled
while that connection is still open, and its peak during it).

Usage: bench_ws.py [--rounds N] [--quick] [--long-mb 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from widgetspy.codec.wsframes import V1_PROTOCOL, encode_v1  # noqa: E402
from widgetspy.message import Message  # noqa: E402
from widgetspy.proxy.web import WsProxy, free_port  # noqa: E402

KERNEL = str(uuid.uuid4())


def frame(buffer_size: int, i: int = 0) -> bytes:
    msg = Message(
        header={"msg_id": uuid.uuid4().hex, "msg_type": "comm_msg", "session": "bench", "username": "u",
                "date": "2026-01-01T00:00:00.000000Z", "version": "5.4"},
        parent_header={}, metadata={},
        content={"comm_id": "c0ffee", "data": {"method": "update", "state": {"value": i}, "buffer_paths": [["b"]]}},
        buffers=[b"\x00" * buffer_size],
    )
    return encode_v1(msg, "shell")


# ---------------------------------------------------------------- server (own thread, own loop)


async def handler(ws) -> None:
    path = ws.request.path
    if path.startswith("/echo"):
        async for m in ws:
            await ws.send(m)
    else:
        n = 0
        async for m in ws:
            if isinstance(m, str) and m == "END":
                await ws.send(f"END {n}")
            else:
                n += 1


def start_server(port: int) -> threading.Thread:
    ready = threading.Event()

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", port, subprotocols=[V1_PROTOCOL], compression=None,
                                    max_size=None, max_queue=None):
            ready.set()
            await asyncio.Future()

    t = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    t.start()
    ready.wait(10)
    return t


# ---------------------------------------------------------------- client measurements


def url(base: str, kind: str) -> str:
    return f"{base.replace('http', 'ws')}/{kind}/api/kernels/{KERNEL}/channels?session_id={uuid.uuid4().hex}"


async def connect(u: str):
    return await websockets.connect(u, subprotocols=[V1_PROTOCOL], compression=None, max_size=None,
                                    max_queue=None, open_timeout=30)


async def rtt(base: str, n: int) -> dict[str, float]:
    ws = await connect(url(base, "echo"))
    data = frame(0)
    times = []
    for _ in range(50):
        await ws.send(data)
        await ws.recv()
    for _ in range(n):
        t = time.perf_counter()
        await ws.send(data)
        await ws.recv()
        times.append(time.perf_counter() - t)
    await ws.close()
    times.sort()
    return {"p50_us": times[len(times) // 2] * 1e6, "p99_us": times[int(len(times) * 0.99)] * 1e6}


async def throughput(base: str, n: int, size: int, rss_pid: int | None = None,
                     cpu_pid: int | None = None) -> dict[str, float]:
    ws = await connect(url(base, "sink"))
    data = frame(size)
    peak = 0.0
    cpu0 = proxy_cpu(cpu_pid) if cpu_pid else 0.0
    t = time.perf_counter()
    for i in range(n):
        await ws.send(data)
        if rss_pid and i % 20 == 0:
            peak = max(peak, rss_mib(rss_pid))
    await ws.send("END")
    reply = await ws.recv()
    elapsed = time.perf_counter() - t
    assert reply == f"END {n}", (reply, n)
    out = {"msgs_per_s": n / elapsed, "mb_per_s": n * len(data) / elapsed / 1e6}
    if cpu_pid:
        out["cpu_us_per_msg"] = (proxy_cpu(cpu_pid) - cpu0) / n * 1e6
    if rss_pid:
        out["rss_end_mib"] = rss_mib(rss_pid)  # the connection is still open here
        out["rss_peak_mib"] = max(peak, out["rss_end_mib"])
    await ws.close()
    return out


def process_tree(pid: int) -> list[int]:
    """A process and its live children (the recorder process, if any)."""
    try:
        return [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return [pid]


def proxy_cpu(pid: int) -> float:
    """CPU seconds (user+sys) of a process and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_mib(pid: int) -> float:
    """Resident MiB of a process and its live children (mitmdump + widgetspy's recorder process)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- run


def measure(base: str, pid: int | None, args: argparse.Namespace) -> dict[str, float]:
    async def go() -> dict[str, float]:
        r = await rtt(base, args.rtt_n)
        small = await throughput(base, args.small_n, 0, cpu_pid=pid)
        big = await throughput(base, args.big_n, 1 << 20, cpu_pid=pid)
        out = {"rtt_p50_us": r["p50_us"], "rtt_p99_us": r["p99_us"], "small_msgs_per_s": small["msgs_per_s"],
               "mb1_msgs_per_s": big["msgs_per_s"], "mb1_mb_per_s": big["mb_per_s"]}
        if pid:
            out["small_cpu_us_per_msg"] = small["cpu_us_per_msg"]
            out["mb1_cpu_us_per_msg"] = big["cpu_us_per_msg"]
        if pid:
            long = await throughput(base, args.long_mb, 1 << 20, rss_pid=pid)
            out["rss_after_long_mib"] = long["rss_end_mib"]
            out["rss_peak_long_mib"] = long["rss_peak_mib"]
        return out

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small counts, one round (smoke run)")
    ap.add_argument("--long-mb", type=int, default=200, help="MB (1 MB messages) on the long connection")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    args.rtt_n, args.small_n, args.big_n = (3000, 20000, 200)
    if args.quick:
        args.rounds, args.rtt_n, args.small_n, args.big_n, args.long_mb = 1, 300, 2000, 20, 20
    port = free_port()
    start_server(port)
    upstream = f"http://127.0.0.1:{port}"
    variants = ["direct", "mitmdump", "widgetspy"]
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    sessions = tempfile.TemporaryDirectory(prefix="bench-ws-")
    for rnd in range(args.rounds):
        order = variants[rnd % 3:] + variants[: rnd % 3]
        for v in order:
            if v == "direct":
                res = measure(upstream, None, args)
            else:
                out_dir = Path(sessions.name) / f"{v}-{rnd}"
                proxy = WsProxy(upstream, out_dir if v == "widgetspy" else None, addon=(v == "widgetspy")).start()
                try:
                    res = measure(proxy.url, proxy.proc.pid, args)  # type: ignore[union-attr]
                finally:
                    proxy.stop()
                if v == "widgetspy":
                    res["session_lines"] = sum(sum(1 for _ in p.open("rb")) for p in out_dir.glob("*.jsonl"))
            results[v].append(res)
            print(f"round {rnd + 1} {v:<10} " + " ".join(f"{k}={val:,.1f}" for k, val in res.items()), flush=True)
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
    print()
    print(f"{'variant':<10} {'RTT p50 µs':>11} {'p99 µs':>8} {'small msg/s':>12} {'×mitm':>6} {'1MB msg/s':>10} "
          f"{'×mitm':>6} {'RSS after long MiB':>19} {'peak':>6}")
    m = med["mitmdump"]
    for v in variants:
        r = med[v]
        print(f"{v:<10} {r['rtt_p50_us']:>11,.0f} {r['rtt_p99_us']:>8,.0f} {r['small_msgs_per_s']:>12,.0f} "
              f"{r['small_msgs_per_s'] / m['small_msgs_per_s']:>6.2f} {r['mb1_msgs_per_s']:>10,.0f} "
              f"{r['mb1_msgs_per_s'] / m['mb1_msgs_per_s']:>6.2f} "
              f"{r.get('rss_after_long_mib', 0):>19,.0f} {r.get('rss_peak_long_mib', 0):>6,.0f}")
    w = med["widgetspy"]
    print(f"\nwidgetspy / mitmdump: throughput small {w['small_msgs_per_s'] / m['small_msgs_per_s']:.2f}x, "
          f"1 MB {w['mb1_msgs_per_s'] / m['mb1_msgs_per_s']:.2f}x, RTT p50 {w['rtt_p50_us'] / m['rtt_p50_us']:.2f}x "
          f"(targets >= 0.9x, >= 0.9x, <= 1.1x); long-connection RSS {w['rss_after_long_mib']:.0f} MiB vs "
          f"mitmdump {m['rss_after_long_mib']:.0f} MiB")
    print(f"proxy CPU per message (user+sys, recorder process included): small {w['small_cpu_us_per_msg']:.0f} µs "
          f"vs mitmdump {m['small_cpu_us_per_msg']:.0f} µs; 1 MB {w['mb1_cpu_us_per_msg'] / 1e3:.2f} ms vs "
          f"{m['mb1_cpu_us_per_msg'] / 1e3:.2f} ms")
    out = args.out or Path(__file__).parent / "results" / f"bench_ws-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "out"}, "median": med,
                               "rounds": results}, indent=1, default=str))
    print(f"wrote {out}")
    sessions.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
