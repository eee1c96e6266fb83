#!/usr/bin/env python
"""Timeline benchmark: read + decode + rebuild a 1M-message session (issue 3).

The session is generated once (seeded) and cached under benchmarks/results/
(git ignores it). Its traffic has the shapes real ipykernel/ipywidgets 8
traffic has, over 1,000 models:
- cells that create widgets (execute_request, busy, execute_input, comm_opens of
  IntSliders with their Layout and SliderStyle, Images with a PNG buffer,
  HBoxes whose children reference sliders, display_data, execute_reply, idle);
- front-end drags (shell comm_msg update, busy, echo_update, idle), some
  clamped by the kernel (echo_update then a corrective update);
- cells that set traits from Python (several kernel updates, some stream output);
- Image updates carrying a 2-8 KiB binary buffer (buffer_paths [["value"]]),
  custom messages with a small buffer, request_state round trips.

Each measurement runs in a fresh child process (so peak RSS and the GC state
are its own), variants rotated over rounds, medians and ratios from one run:

  read        the lines alone (binary file iteration)
  scan        the floor under any reader of this file: each line decoded by msgspec into a
              struct of its `type` and `msg.header.msg_type` only (the rest is skipped, not built)
  parse       open_session(): lines -> records
  parse_lean  open_session(lean=True): lines -> lean message records (session/lean.py)
  rebuild     open_session() + Timeline(history=False).feed, then the final-state query
  lean        open_session(lean=True) + Timeline(history=False).feed, then the
              final-state query: the end-to-end path for a final state (issue 3)
  history     open_session() + Timeline(history=True).feed
  query       (inside `rebuild`/`lean`) tl.states() at the end + the state document
  memory      peak RSS of `rebuild`, `lean` and `history` on 250k vs 1M messages

`--baseline DIR` adds the same steps run against another widgetspy tree
(e.g. `git archive HEAD widgetspy | tar -x -C /tmp/base`), side by side.

Usage: bench_timeline.py [--messages N] [--rounds R] [--baseline DIR] [--steps a,b] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
GEN_VERSION = 2  # bump when the generator changes (invalidates the cache); 2: request_state replies keep the slider's layout/style
STEPS = ("read", "scan", "parse", "parse_lean", "rebuild", "lean", "history")
LEAN_STEPS = ("parse_lean", "lean")  # need open_session(lean=True); a --baseline tree without it runs them full

# ---------------------------------------------------------------- the session

CTRL = "@jupyter-widgets/controls"
BASE = "@jupyter-widgets/base"


def ident(name: str, module: str = CTRL, view: str | None = None, view_module: str | None = None) -> dict:
    return {"_model_module": module, "_model_module_version": "2.0.0", "_model_name": name,
            "_view_count": None, "_view_module": view_module or module, "_view_module_version": "2.0.0",
            "_view_name": view if view is not None else name.replace("Model", "View")}


def layout_state() -> dict:
    s = ident("LayoutModel", BASE)
    for k in ("align_content", "align_items", "align_self", "border_bottom", "border_left", "border_right",
              "border_top", "bottom", "display", "flex", "flex_flow", "grid_area", "height", "justify_content",
              "left", "margin", "max_height", "max_width", "min_height", "min_width", "overflow", "padding",
              "right", "top", "visibility", "width"):
        s[k] = None
    return s


def slider_style_state() -> dict:
    return {**ident("SliderStyleModel", view="StyleView", view_module=BASE), "description_width": "",
            "handle_color": None}


def slider_state(layout: str, style: str, value: int, n: int) -> dict:
    return {**ident("IntSliderModel"), "_dom_classes": [], "behavior": "drag-tap", "continuous_update": True,
            "description": f"x{n}", "description_allow_html": False, "disabled": False,
            "layout": f"IPY_MODEL_{layout}", "max": 100, "min": 0, "orientation": "horizontal", "readout": True,
            "readout_format": "d", "step": 1, "style": f"IPY_MODEL_{style}", "tabbable": None, "tooltip": None,
            "value": value}


def image_state(layout: str) -> dict:
    return {**ident("ImageModel"), "_dom_classes": [], "format": "png", "height": "", "layout": f"IPY_MODEL_{layout}",
            "tabbable": None, "tooltip": None, "width": ""}  # value travels as a buffer


def box_state(layout: str, children: list[str]) -> dict:
    return {**ident("HBoxModel", view="HBoxView"), "_dom_classes": [], "box_style": "",
            "children": [f"IPY_MODEL_{c}" for c in children], "layout": f"IPY_MODEL_{layout}", "tabbable": None,
            "tooltip": None}


class Gen:
    """Writes the session straight to a SessionWriter, record by record."""

    def __init__(self, writer, seed: int) -> None:
        from widgetspy.message import Channel, Direction, Message
        from widgetspy.session.records import EventRecord, MessageRecord

        self.Message, self.MessageRecord, self.EventRecord = Message, MessageRecord, EventRecord
        self.K, self.F = Direction.TO_FRONTEND, Direction.TO_KERNEL
        self.SHELL, self.IOPUB = Channel.SHELL, Channel.IOPUB
        self.w = writer
        self.rnd = random.Random(seed)
        self.seq = 0
        self.t = 0.0
        self.n = 0
        self.k_ids = 0
        self.kernel_session = self.uuid()
        self.fe_session = self.uuid()
        self.count = 0
        self.batch: list = []

    def uuid(self) -> str:
        h = f"{self.rnd.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def emit(self, rec) -> None:
        self.batch.append(rec)
        if len(self.batch) >= 5000:
            self.flush()

    def flush(self) -> None:
        self.w.write_many(self.batch)
        self.batch = []

    def date(self) -> str:
        sec = 1764021600 + self.t
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{int(sec % 1 * 1e6):06d}Z"

    def rec(self, direction, channel, msg_type, content, parent=None, buffers=(), metadata=None, size=None):
        self.seq += 1
        self.t += self.rnd.uniform(0.00005, 0.0004)
        if direction is self.K:
            self.k_ids += 1
            mid = f"{self.kernel_session[:8]}-{self.kernel_session[9:13]}_{4242}_{self.k_ids}"
            sess, peer = self.kernel_session, None
        else:
            mid, sess, peer = self.uuid(), self.fe_session, self.fe_session
        if channel is self.IOPUB:
            cid = content.get("comm_id")
            peer = f"comm-{cid}" if cid else ("kernel.f00.status" if msg_type == "status" else f"kernel.f00.{msg_type}")
        header = {"date": self.date(), "msg_id": mid, "msg_type": msg_type, "session": sess,
                  "username": "username", "version": "5.4"}
        msg = self.Message(header, dict(parent.msg.header) if parent is not None else {}, metadata or {}, content,
                           list(buffers))
        if size is None:
            size = 420 + len(str(content)) + sum(len(b) for b in buffers)
        r = self.MessageRecord(self.seq, self.t, "zmq", direction, channel, msg, 7 + len(buffers), size, peer)
        self.emit(r)
        self.n += 1
        return r

    def event(self, name: str, **data) -> None:
        self.seq += 1
        self.emit(self.EventRecord(self.seq, round(self.t, 6), name, data))

    def status(self, parent, state: str):
        return self.rec(self.K, self.IOPUB, "status", {"execution_state": state}, parent)

    def comm_open(self, parent, cid: str, state: dict, buffer_paths=(), buffers=()):
        self.rec(self.K, self.IOPUB, "comm_open", {
            "data": {"state": state, "buffer_paths": [list(p) for p in buffer_paths]},
            "comm_id": cid, "target_name": "jupyter.widget", "target_module": None},
            parent, buffers=buffers, metadata={"version": "2.1.0"})

    def comm_msg(self, direction, parent, cid: str, data: dict, buffers=()):
        ch = self.SHELL if direction is self.F else self.IOPUB
        return self.rec(direction, ch, "comm_msg", {"comm_id": cid, "data": data}, parent, buffers=buffers,
                        metadata={"version": "2.1.0"} if direction is self.K else {})

    def execute(self, code: str):
        ex = self.rec(self.F, self.SHELL, "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": True,
            "stop_on_error": True}, metadata={"cellId": self.uuid(), "deletedCells": [], "recordTiming": False})
        self.status(ex, "busy")
        self.exec_count = getattr(self, "exec_count", 0) + 1
        self.rec(self.K, self.IOPUB, "execute_input", {"code": code, "execution_count": self.exec_count}, ex)
        return ex

    def execute_done(self, ex) -> None:
        self.rec(self.K, self.SHELL, "execute_reply", {
            "status": "ok", "execution_count": self.exec_count, "user_expressions": {}, "payload": []}, ex)
        self.status(ex, "idle")

    def display(self, parent, model_id: str, text: str) -> None:
        self.rec(self.K, self.IOPUB, "display_data", {"data": {
            "text/plain": text, "application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": model_id}}, "metadata": {}, "transient": {}},
            parent)

    def png(self, size: int) -> bytes:
        return b"\x89PNG\r\n\x1a\n" + self.rnd.randbytes(size - 8)

    def build(self, messages: int, models: int = 1000) -> None:
        rnd = self.rnd
        self.event("kernel_started", pid=4242)
        self.event("client_connected", peer=self.fe_session, channel="shell")
        # models: per cell 6 sliders (+layout, style each) and 1 image (+layout) and 1 box (+layout) = 22
        sliders: list[str] = []
        images: list[str] = []
        values: dict[str, int] = {}
        styling: dict[str, tuple[str, str]] = {}  # slider -> its layout and style models
        n_models = 0
        while n_models < models:
            ex = self.execute("sliders = [W.IntSlider() for _ in range(6)]\nimg = W.Image(value=png)\n"
                              "display(W.HBox(sliders), img)")
            row = []
            for _ in range(6):
                if n_models + 3 > models:
                    break
                lay, sty, sl = self.uuid().replace("-", ""), self.uuid().replace("-", ""), self.uuid().replace("-", "")
                self.comm_open(ex, lay, layout_state())
                self.comm_open(ex, sty, slider_style_state())
                v = rnd.randrange(101)
                self.comm_open(ex, sl, slider_state(lay, sty, v, len(sliders)))
                values[sl] = v
                styling[sl] = (lay, sty)
                sliders.append(sl)
                row.append(sl)
                n_models += 3
            if n_models + 2 <= models:
                lay, im = self.uuid().replace("-", ""), self.uuid().replace("-", "")
                self.comm_open(ex, lay, layout_state())
                self.comm_open(ex, im, image_state(lay), [["value"]], [self.png(rnd.randrange(1024, 4096))])
                images.append(im)
                n_models += 2
            if row and n_models + 2 <= models:
                lay, box = self.uuid().replace("-", ""), self.uuid().replace("-", "")
                self.comm_open(ex, lay, layout_state())
                self.comm_open(ex, box, box_state(lay, row))
                n_models += 2
                self.display(ex, box, "HBox(children=(IntSlider(value=0), ...))")
            while 0 < models - n_models < 3:  # fill up to exactly `models` with spare layouts
                self.comm_open(ex, self.uuid().replace("-", ""), layout_state())
                n_models += 1
            if images:
                self.display(ex, images[-1], "Image(value=b'...')")
            self.execute_done(ex)
        while self.n < messages:
            roll = rnd.random()
            if roll < 0.62:  # a front-end drag step
                sl = rnd.choice(sliders)
                v = rnd.randrange(120)
                up = self.comm_msg(self.F, None, sl, {"method": "update", "state": {"value": v}, "buffer_paths": []})
                self.status(up, "busy")
                self.comm_msg(self.K, up, sl, {"method": "echo_update", "state": {"value": v}, "buffer_paths": []})
                if v > 100:  # clamped by the kernel: corrective update
                    self.comm_msg(self.K, up, sl, {"method": "update", "state": {"value": 100},
                                                   "buffer_paths": []})
                    v = 100
                values[sl] = v
                self.status(up, "idle")
            elif roll < 0.85:  # a cell that sets traits from Python
                ex = self.execute("for s in rnd.sample(sliders, k): s.value += 1; s.description = ...")
                for sl in rnd.sample(sliders, rnd.randrange(2, 9)):
                    values[sl] = (values[sl] + 1) % 101
                    self.comm_msg(self.K, ex, sl, {"method": "update", "state": {
                        "value": values[sl], "description": f"v{self.exec_count}"}, "buffer_paths": []})
                if rnd.random() < 0.3:
                    self.rec(self.K, self.IOPUB, "stream", {"name": "stdout", "text": f"step {self.exec_count}\n"}, ex)
                self.execute_done(ex)
            elif roll < 0.93:  # new image frames from the kernel: binary buffers
                ex = self.execute("for f in frames: img.value = f")
                for im in rnd.sample(images, rnd.randrange(1, 4)):
                    self.comm_msg(self.K, ex, im, {"method": "update", "state": {}, "buffer_paths": [["value"]]},
                                  buffers=[self.png(rnd.randrange(2048, 8192))])
                self.execute_done(ex)
            elif roll < 0.97:  # a custom message with a small buffer
                sl = rnd.choice(sliders)
                ex = self.execute("w.send({'n': 1}, buffers=[b])")
                self.comm_msg(self.K, ex, sl, {"method": "custom", "content": {"n": 1}}, buffers=[rnd.randbytes(64)])
                self.execute_done(ex)
            else:  # request_state (a reloaded page)
                sl = rnd.choice(sliders)
                rq = self.comm_msg(self.F, None, sl, {"method": "request_state"})
                self.status(rq, "busy")
                st = slider_state(*styling[sl], values[sl], 0)
                self.comm_msg(self.K, rq, sl, {"method": "update", "state": st, "buffer_paths": []})
                self.status(rq, "idle")
        self.flush()


def session_file(messages: int, seed: int = 7) -> Path:
    """The cached session (generated on first use)."""
    path = RESULTS / f"timeline-session-{messages}-s{seed}-g{GEN_VERSION}.jsonl"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT))
    from widgetspy import __version__
    from widgetspy.session import SessionHeader, SessionWriter

    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    t0 = time.perf_counter()
    header = SessionHeader(1, __version__, "2026-11-24T22:00:00.000Z", {"name": "python3", "language": "python"},
                           ["zmq"], {"mode": "bench_timeline"})
    with SessionWriter(tmp, header, overwrite=True) as w:
        gen = Gen(w, seed)
        gen.build(messages)
    os.replace(tmp, path)
    print(f"generated {path.name}: {gen.n:,} messages, {path.stat().st_size / 1e6:.0f} MB "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


# ---------------------------------------------------------------- one measurement (child process)


def child(step: str, path: Path) -> dict:
    import gc

    import inspect

    from widgetspy.session import EventRecord, UnparsedRecord, open_session

    def lean_option(step: str) -> dict:
        if step in LEAN_STEPS and "lean" in inspect.signature(open_session).parameters:
            return {"lean": True}
        return {}

    out: dict = {}
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    if step == "read":
        n = 0
        with open(path, "rb") as fh:
            for _line in fh:
                n += 1
        out["lines"] = n
    elif step == "scan":
        import msgspec

        header = msgspec.defstruct("Header", [("msg_type", str, "")])
        msg = msgspec.defstruct("Msg", [("header", header)])
        line_type = msgspec.defstruct("Line", [("type", str), ("msg", msg | None, None)])
        decode = msgspec.json.Decoder(line_type).decode
        n = 0
        with open(path, "rb") as fh:
            next(fh)  # the session header
            for line in fh:
                if decode(line).msg is not None:
                    n += 1
        out["messages"] = n
    elif step in ("parse", "parse_lean"):
        n = 0
        for rec in open_session(path, **lean_option(step)):
            if rec.__class__ is not EventRecord and rec.__class__ is not UnparsedRecord:  # messages, lean or not
                n += 1
        out["messages"] = n
    elif step in ("rebuild", "lean", "history"):
        from widgetspy.timeline import Side, Timeline, state_document

        tl = Timeline(history=step == "history")
        feed = tl.feed
        for rec in open_session(path, **lean_option(step)):
            feed(rec)
        out["messages"] = tl.messages
        t1, c1 = time.perf_counter(), time.process_time()
        states = tl.states(at=tl.final_seq(), side=Side.KERNEL)
        doc = state_document({mid: s for mid, (_m, s) in states.items()})
        fe = tl.states(side=Side.FRONTEND)
        out["query_s"] = time.perf_counter() - t1
        out["query_cpu_s"] = time.process_time() - c1
        out["models"] = len(doc["state"])
        out["disagree"] = sum(1 for mid, (_m, s) in states.items() if fe.get(mid, (None, None))[1] != s)
        out["problems"] = len(tl.problems)
        out["checksum"] = sum(len(json.dumps(e["state"], sort_keys=True)) for e in doc["state"].values())
        out["buffers"] = sum(len(e.get("buffers", ())) for e in doc["state"].values())
    else:
        raise SystemExit(f"unknown step {step}")
    out["seconds"] = time.perf_counter() - t0 - out.get("query_s", 0.0)
    out["cpu_seconds"] = time.process_time() - c0 - out.get("query_cpu_s", 0.0)
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(src: Path, step: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, __file__, "--child", step, "--session", str(path)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {step} ({src}) failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=250_000, help="the second session for the memory comparison")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--baseline", type=Path, help="another widgetspy tree to run side by side")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--session", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(child(args.child, args.session)))
        return 0

    big = session_file(args.messages)
    small = session_file(args.small)
    steps = [s for s in args.steps.split(",") if s]
    variants = [("new", ROOT)] + ([("base", args.baseline.resolve())] if args.baseline else [])
    load = os.getloadavg()
    print(f"session {big.name}: {big.stat().st_size / 1e6:.0f} MB; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"variants {', '.join(v for v, _ in variants)}", flush=True)

    runs: dict[str, list[dict]] = {}
    jobs = [(v, src, step) for v, src in variants for step in steps]
    for r in range(args.rounds):
        order = jobs[r % len(jobs):] + jobs[: r % len(jobs)]
        for v, src, step in order:
            res = run_child(src, step, big)
            runs.setdefault(f"{v}:{step}", []).append(res)
            n = res.get("messages") or res.get("lines")
            extra = f" query {res['query_s'] * 1e3:.0f} ms" if "query_s" in res else ""
            print(f"round {r + 1} {v:>4} {step:<8} {n / res['seconds']:>11,.0f} /s wall  "
                  f"{n / res['cpu_seconds']:>11,.0f} /s cpu  {res['seconds']:6.2f} s  "
                  f"rss {res['maxrss_mib']:6.0f} MiB{extra}", flush=True)

    # memory: the same rebuild on the short session
    mem: dict[str, dict] = {}
    for v, src in variants:
        for step in [s for s in ("rebuild", "lean", "history") if s in steps]:
            res = run_child(src, step, small)
            mem[f"{v}:{step}"] = {"small": res["maxrss_mib"],
                                  "big": statistics.median(x["maxrss_mib"] for x in runs[f"{v}:{step}"])}

    # the results must agree between variants
    for group in (("rebuild", "lean"), ("history",)):
        seen = {(x["models"], x["checksum"], x["buffers"], x["disagree"]) for v, _ in variants for step in group
                for x in runs.get(f"{v}:{step}", [])}
        if len(seen) > 1:
            print(f"WARNING: {'/'.join(group)} results differ between variants/rounds/steps: {seen}")

    # Both clocks: wall time is what a user waits; CPU time (process_time) is
    # what the code costs, and drifts less when other jobs share the 2 cores.
    summary: dict[str, dict] = {}
    for clock, key in (("wall", "seconds"), ("cpu", "cpu_seconds")):
        print(f"\n{'step (' + clock + ')':<18}" + "".join(f"{v + ' msg/s':>16}" for v, _ in variants)
              + ("   new/base" if len(variants) > 1 else ""))
        for step in steps:
            row = {}
            for v, _ in variants:
                xs = runs[f"{v}:{step}"]
                n = xs[0].get("messages") or xs[0].get("lines")
                row[v] = n / statistics.median(x[key] for x in xs)
            summary[f"{step}_{clock}"] = row
            ratio = f"   ×{row['new'] / row['base']:.2f}" if "base" in row else ""
            print(f"{step:<18}" + "".join(f"{row[v]:>16,.0f}" for v, _ in variants) + ratio)
        qstep = "lean" if "lean" in steps else "rebuild"
        if qstep in steps:
            qkey = "query_s" if clock == "wall" else "query_cpu_s"
            row = {v: statistics.median(x[qkey] for x in runs[f"{v}:{qstep}"]) * 1e3 for v, _ in variants}
            summary[f"query_ms_{clock}"] = row
            ratio = f"   ×{row['base'] / row['new']:.2f} (base/new time)" if "base" in row else ""
            print(f"{'final-state query (ms)':<18}" + "".join(f"{row[v]:>16,.0f}" for v, _ in variants) + ratio)
    print()
    for key, m in mem.items():
        print(f"peak RSS {key:<14} {args.small:,}: {m['small']:.0f} MiB   {args.messages:,}: {m['big']:.0f} MiB")
    load2 = os.getloadavg()
    print(f"load after: {load2[0]:.2f} {load2[1]:.2f} {load2[2]:.2f}")

    result = {"messages": args.messages, "file_bytes": big.stat().st_size, "summary_msg_per_s": summary,
              "peak_rss_mib": mem, "runs": runs, "load_before": load, "load_after": load2,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}}
    out = args.out or RESULTS / f"bench_timeline-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
