"""Replay speed: how long replaying a widget session takes, against the
kernel's own busy time in the recording.

Records a widget session of about 10,000 messages on a real kernel (a front-end
dragging sliders: update -> busy, echo_update, idle; plus cells that set values
from Python), then replays it with each pace and reports

    replay time (first message sent -> last answer) / recorded busy time

where the recorded busy time is the sum over requests of (idle - busy) as the
recorder saw it: the time the kernel itself spent. Goal: <= 1.2 with --pace fast.
Every replay must come out identical (checked).

The busy time leaves out what the kernel does between requests (reading,
dispatching, publishing status), so it is also compared with a floor measured in
the same run: the same updates sent pipelined by a bare jupyter_client client
straight to a kernel (no recorder, no replay logic), waiting for every idle.

    .venv/bin/python benchmarks/bench_replay.py [--updates 2400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from widgetspy.frontend import FrontendClient
from widgetspy.message import Direction
from widgetspy.proxy.process import RecorderProcess
from widgetspy.replay.runner import ReplayOptions, run_replay
from widgetspy.session import MessageRecord, read_session

RESULTS = Path(__file__).parent / "results"


def record(path: Path, updates: int) -> None:
    with RecorderProcess(path) as rec:
        with FrontendClient(str(rec.connection_file)) as fe:
            fe.execute("import ipywidgets as W\nsliders = [W.IntSlider(max=10**6) for _ in range(10)]")
            ids = fe.find("IntSliderModel")
            for i in range(updates):
                fe.update(ids[i % len(ids)], {"value": i})
                if i % 200 == 199:
                    fe.execute(f"for s in sliders: s.value = {i}")
            fe.shutdown()
        rec.wait()


def busy_time(path: Path) -> tuple[float, int]:
    _, records, _ = read_session(path)
    busy: dict[str, float] = {}
    total = 0.0
    messages = 0
    for r in records:
        if not isinstance(r, MessageRecord):
            continue
        messages += 1
        if r.direction is Direction.TO_FRONTEND and r.msg_type == "status":
            parent = r.msg.parent_id or ""
            state = r.msg.content.get("execution_state")
            if state == "busy":
                busy[parent] = r.t
            elif state == "idle" and parent in busy:
                total += r.t - busy.pop(parent)
    return total, messages


def floor(updates: int) -> float:
    """Seconds a bare client needs to push the same updates through a kernel, pipelined."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        fe = FrontendClient("", client=kc)
        fe.execute("import ipywidgets as W\nsliders = [W.IntSlider(max=10**6) for _ in range(10)]")
        ids = fe.find("IntSliderModel")
        t = time.monotonic()
        pending = set()
        for i in range(updates):
            pending.add(fe.send("comm_msg", {"comm_id": ids[i % len(ids)],
                                             "data": {"method": "update", "state": {"value": i}, "buffer_paths": []}}))
            if i % 200 == 199:
                pending.add(kc.execute(f"for s in sliders: s.value = {i}"))
        while pending:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                pending.discard(msg["parent_header"].get("msg_id"))
        return time.monotonic() - t
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=2400, help="front-end updates to record (x4 messages each)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        session = Path(tmp) / "session.jsonl"
        t = time.monotonic()
        record(session, args.updates)
        busy, messages = busy_time(session)
        print(f"recorded {messages} messages in {time.monotonic() - t:.1f} s; kernel busy time {busy:.2f} s")
        times: dict[str, list[float]] = {"floor": [], "fast": [], "idle": []}
        for rnd in range(args.rounds):
            order = list(times)[rnd % 3:] + list(times)[: rnd % 3]
            for pace in order:
                if pace == "floor":
                    times["floor"].append(floor(args.updates))
                    print(f"round {rnd} floor     : {times['floor'][-1]:.2f} s "
                          f"({times['floor'][-1] / busy:.2f}x busy)")
                    continue
                result = run_replay(session, ReplayOptions(pace=pace))
                if not result.identical:
                    print(f"round {rnd} pace {pace}: DIVERGED: {result.divergences[0].short()}")
                    return 1
                times[pace].append(result.replay_time)
                print(f"round {rnd} pace {pace:4}: {result.replay_time:.2f} s "
                      f"({result.replay_time / busy:.2f}x busy), {result.elapsed:.2f} s with kernel start")
    fl = statistics.median(times["floor"])
    summary = {pace: {"median_s": statistics.median(v), "ratio_to_busy": statistics.median(v) / busy,
                      "ratio_to_floor": statistics.median(v) / fl, "rounds": v}
               for pace, v in times.items()}
    print(f"\n{'variant':8} {'median s':>9} {'x busy':>7} {'x floor':>8}   (kernel busy {busy:.2f} s, {messages} messages)")
    for pace, row in summary.items():
        print(f"{pace:8} {row['median_s']:9.2f} {row['ratio_to_busy']:7.2f} {row['ratio_to_floor']:8.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_replay-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"messages": messages, "busy_s": busy, "paces": summary}, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
