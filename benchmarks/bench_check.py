#!/usr/bin/env python
"""widgetspy check benchmark: rule throughput on a large synthetic session.

The session is realistic widget traffic over 1,000 models, generated with the
shapes real ipykernel/ipywidgets 8 traffic has (see `widgetspy demo`):
- cells that create widgets (execute_request, busy, execute_input, comm_open of
  a Layout, a Style and the widget, display_data, execute_reply, idle);
- front-end drags (comm_msg update on shell, busy, echo_update, idle), some
  clamped by the kernel (echo_update then a corrective update);
- cells that set traits from Python (kernel updates, some with binary buffers);
- request_state round trips and stream output.

Measured:
  rules      all rules together, fed pre-decoded records (MessageRecord objects
             in memory): what the rules and their shared context cost
  context    the shared Context alone (no rules): the floor under the rules
  timeline   all rules plus a shared Timeline(history=False) fed first
  per_rule   each rule alone minus the context floor, on a slice
  file       end to end from a session file: read + decode + all rules
  decode     reading + decoding the file alone

Rounds are rotated (round r starts with the r-th variant) and medians reported.
`--baseline PATH:PACKAGE` measures another copy of the inspectors (importable as
PACKAGE from PATH, sharing this tree's records) side by side: `base-context`,
`base-rules`, and the speed-up ratios from the same run.

Usage: bench_check.py [--messages N] [--rounds R] [--per-rule N] [--out FILE] [--session FILE]
                      [--baseline PATH:PACKAGE] [--skip timeline,decode,file]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from widgetspy import __version__  # noqa: E402
from widgetspy.inspectors import Checker, all_rules  # noqa: E402
from widgetspy.message import Channel, Direction, Message  # noqa: E402
from widgetspy.session import SessionHeader, SessionWriter, open_session  # noqa: E402
from widgetspy.session.records import EventRecord, MessageRecord  # noqa: E402
from widgetspy.timeline import Timeline  # noqa: E402

K, F = Direction.TO_FRONTEND, Direction.TO_KERNEL
SHELL, IOPUB = Channel.SHELL, Channel.IOPUB
CTRL = "@jupyter-widgets/controls"
BASE = "@jupyter-widgets/base"


def ident(name: str, module: str = CTRL) -> dict:
    return {"_model_name": name, "_model_module": module, "_model_module_version": "2.0.0",
            "_view_name": name.replace("Model", "View"), "_view_module": module, "_view_module_version": "2.0.0"}


def slider_state(layout: str, style: str, value: int) -> dict:
    return {**ident("IntSliderModel"), "_dom_classes": [], "_view_count": None, "behavior": "drag-tap",
            "continuous_update": True, "description": "x", "description_allow_html": False, "disabled": False,
            "layout": f"IPY_MODEL_{layout}", "max": 100, "min": 0, "orientation": "horizontal", "readout": True,
            "readout_format": "d", "step": 1, "style": f"IPY_MODEL_{style}", "tabbable": None, "tooltip": None,
            "value": value}


def layout_state() -> dict:
    s = {**ident("LayoutModel", BASE), "_view_count": None}
    for k in ("align_content", "align_items", "border", "display", "height", "margin", "width", "overflow"):
        s[k] = None
    return s


def style_state() -> dict:
    return {**ident("SliderStyleModel"), "_view_name": "StyleView", "_view_module": BASE,
            "description_width": "", "handle_color": None}


class Gen:
    def __init__(self, seed: int = 7) -> None:
        self.rnd = random.Random(seed)
        self.seq = 0
        self.t = 0.0
        self.n = 0
        self.out: list = []
        self.k_ids = 0
        self.f_ids = 0

    def rec(self, direction, channel, msg_type, content, parent=None, buffers=(), size=300, metadata=None):
        self.seq += 1
        self.t += 0.0002
        if direction is K:
            self.k_ids += 1
            mid = f"k-{self.k_ids}"
            sess = "kernel-session"
        else:
            self.f_ids += 1
            mid = f"f-{self.f_ids}"
            sess = "fe-session"
        header = {"msg_id": mid, "msg_type": msg_type, "username": "u", "session": sess,
                  "date": "2026-11-24T22:00:00.000000Z", "version": "5.4"}
        msg = Message(header, dict(parent.msg.header) if parent is not None else {}, metadata or {}, content,
                      list(buffers))
        r = MessageRecord(self.seq, self.t, "zmq", direction, channel, msg, 6, size,
                          "client" if direction is F else None)
        self.out.append(r)
        self.n += 1
        return r

    def status(self, parent, state):
        return self.rec(K, IOPUB, "status", {"execution_state": state}, parent, size=200)

    def build(self, messages: int, models: int = 1000) -> list:
        rnd = self.rnd
        self.seq += 1
        self.out.append(EventRecord(self.seq, 0.0, "kernel_started", {}))
        sliders: list[str] = []
        # cells that create the widgets: 1 slider + its layout + style each => `models` models in all
        per_cell = 10
        i = 0
        while len(sliders) * 3 < models:
            ex = self.rec(F, SHELL, "execute_request", {"code": f"ws{i} = [W.IntSlider() for _ in range(10)]"})
            self.status(ex, "busy")
            self.rec(K, IOPUB, "execute_input", {"code": ex.msg.content["code"], "execution_count": i}, ex)
            for _ in range(per_cell):
                n = len(sliders)
                lay, sty, sl = f"lay{n:06d}", f"sty{n:06d}", f"sld{n:06d}"
                for cid, state in ((lay, layout_state()), (sty, style_state()),
                                   (sl, slider_state(lay, sty, rnd.randrange(100)))):
                    self.rec(K, IOPUB, "comm_open", {"comm_id": cid, "target_name": "jupyter.widget",
                                                     "target_module": None,
                                                     "data": {"state": state, "buffer_paths": []}}, ex, size=900,
                             metadata={"version": "2.1.0"})
                sliders.append(sl)
                self.rec(K, IOPUB, "display_data", {"data": {"text/plain": "IntSlider()",
                         "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                                      "model_id": sl}},
                         "metadata": {}, "transient": {}}, ex)
            self.rec(K, SHELL, "execute_reply", {"status": "ok", "execution_count": i}, ex)
            self.status(ex, "idle")
            i += 1
        values = {s: 0 for s in sliders}
        while self.n < messages:
            roll = rnd.random()
            sl = rnd.choice(sliders)
            if roll < 0.70:  # a drag step
                v = rnd.randrange(120)
                up = self.rec(F, SHELL, "comm_msg", {"comm_id": sl, "data": {"method": "update", "state": {"value": v},
                                                                              "buffer_paths": []}})
                self.status(up, "busy")
                self.rec(K, IOPUB, "comm_msg", {"comm_id": sl, "data": {"method": "echo_update",
                                                                         "state": {"value": v}, "buffer_paths": []}}, up)
                if v > 100:  # clamped by the kernel
                    self.rec(K, IOPUB, "comm_msg", {"comm_id": sl, "data": {"method": "update",
                                                                             "state": {"value": 100},
                                                                             "buffer_paths": []}}, up)
                    v = 100
                values[sl] = v
                self.status(up, "idle")
            elif roll < 0.90:  # a cell that sets traits from Python
                ex = self.rec(F, SHELL, "execute_request", {"code": "for w in ws: w.value += 1"})
                self.status(ex, "busy")
                self.rec(K, IOPUB, "execute_input", {"code": "...", "execution_count": i}, ex)
                for target in rnd.sample(sliders, 5):
                    values[target] = (values[target] + 1) % 100
                    self.rec(K, IOPUB, "comm_msg", {"comm_id": target, "data": {
                        "method": "update", "state": {"value": values[target], "description": f"v{i}"},
                        "buffer_paths": []}}, ex)
                if rnd.random() < 0.3:
                    self.rec(K, IOPUB, "stream", {"name": "stdout", "text": "done\n"}, ex)
                self.rec(K, SHELL, "execute_reply", {"status": "ok", "execution_count": i}, ex)
                self.status(ex, "idle")
                i += 1
            elif roll < 0.95:  # a binary custom message with a buffer
                ex = self.rec(F, SHELL, "execute_request", {"code": "w.send(...)"})
                self.status(ex, "busy")
                self.rec(K, IOPUB, "comm_msg", {"comm_id": sl, "data": {"method": "custom", "content": {"n": 1}}},
                         ex, buffers=[os.urandom(64)])
                self.rec(K, SHELL, "execute_reply", {"status": "ok", "execution_count": i}, ex)
                self.status(ex, "idle")
                i += 1
            else:  # request_state (what a reloaded page asks)
                rq = self.rec(F, SHELL, "comm_msg", {"comm_id": sl, "data": {"method": "request_state"}})
                self.status(rq, "busy")
                n = int(sl[3:])
                self.rec(K, IOPUB, "comm_msg", {"comm_id": sl, "data": {
                    "method": "update", "state": slider_state(f"lay{n:06d}", f"sty{n:06d}", values[sl]),
                    "buffer_paths": []}}, rq, size=900)
                self.status(rq, "idle")
        return self.out


WALL: dict[int, float] = {}  # id of a CPU-time sample -> the wall time of that run


def timed(fn) -> float:
    """CPU seconds of one run (the machine is shared: CPU time is what the code costs; the
    wall time is kept beside it)."""
    gc.collect()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        WALL[len(WALL)] = wall
        timed.last_wall = wall  # type: ignore[attr-defined]
        return cpu
    finally:
        gc.enable()


def run_checker(records, rules=None, timeline=False):
    def go():
        checker = Checker(rules=rules) if rules is not None else Checker()
        if timeline:
            checker = Checker(timeline=Timeline(history=False))
        checker.feed_all(records)
        checker.finish()
        go.findings = checker.findings  # type: ignore[attr-defined]
    return go


def load_baseline(spec: str):
    """`PATH:PACKAGE` (e.g. `/tmp/base:wsold.inspectors`): the Checker of another copy of the
    inspectors, importable from PATH, run on the same records side by side.

    PACKAGE's top level may be a whole widgetspy tree under another name (`git archive HEAD widgetspy |
    tar -x -C /tmp/base && mv /tmp/base/widgetspy /tmp/base/wsold`): only its `inspectors` are its own,
    every other module of it is this tree's (the checker dispatches on `rec.__class__ is MessageRecord`,
    so both sides must share the record classes)."""
    import importlib
    import types

    path, _, module = spec.rpartition(":")
    root = module.split(".")[0]
    if root != "widgetspy" and root not in sys.modules:
        import widgetspy.buffers  # noqa: F401  (what the inspectors import, loaded before aliasing)
        import widgetspy.message  # noqa: F401
        import widgetspy.session.records  # noqa: F401
        import widgetspy.session.taps  # noqa: F401

        pkg = types.ModuleType(root)
        pkg.__path__ = [str(Path(path) / root)]
        pkg.__version__ = __version__  # type: ignore[attr-defined]
        sys.modules[root] = pkg
        for name, mod in list(sys.modules.items()):
            if name.startswith("widgetspy.") and not name.startswith("widgetspy.inspectors"):
                sys.modules[root + name[len("widgetspy"):]] = mod
    sys.path.insert(0, path)
    mod = importlib.import_module(module)
    return mod.Checker


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-rule", type=int, default=200_000, help="messages for the per-rule costs (0: skip)")
    ap.add_argument("--session", type=Path, help="check this session file instead of generating one")
    ap.add_argument("--baseline", help="PATH:PACKAGE of another copy of the inspectors to measure side by side")
    ap.add_argument("--skip", default="", help="comma-separated: timeline,decode,file")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    tmp = tempfile.TemporaryDirectory(prefix="bench-check-")
    if args.session:
        path = args.session
        records = list(open_session(path))
    else:
        t0 = time.perf_counter()
        records = Gen().build(args.messages)
        print(f"generated {len(records):,} records in {time.perf_counter() - t0:.1f} s", flush=True)
        path = Path(tmp.name) / "synthetic.jsonl"
        if not {"decode", "file"} <= skip:
            header = SessionHeader(1, __version__, _dt.datetime.now(_dt.timezone.utc).isoformat(),
                                   {"name": "synthetic"}, ["zmq"], {"mode": "bench_check"})
            with SessionWriter(path, header, overwrite=True) as w:
                for i in range(0, len(records), 10_000):
                    w.write_many(records[i:i + 10_000])
    messages = sum(1 for r in records if isinstance(r, MessageRecord))
    size = path.stat().st_size if path.exists() else 0
    print(f"session: {messages:,} messages, {size / 1e6:.0f} MB at {path}", flush=True)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"({os.cpu_count()} cpus)", flush=True)

    result: dict = {"messages": messages, "file_bytes": size, "rules": len(all_rules()), "rounds": {},
                    "load_before": os.getloadavg()}

    def from_file():
        checker = Checker()
        for rec in open_session(path):
            checker.feed(rec)
        checker.finish()

    def decode_only():
        for _rec in open_session(path):
            pass

    variants = {"context": run_checker(records, rules=[]), "rules": run_checker(records)}
    if args.baseline:
        Base = load_baseline(args.baseline)

        def base(rules_on: bool):
            def go():
                checker = Base() if rules_on else Base(rules=[])
                checker.feed_all(records)
                checker.finish()
            return go

        variants["base-context"] = base(False)
        variants["base-rules"] = base(True)
    if "timeline" not in skip:
        variants["timeline"] = run_checker(records, timeline=True)
    if "decode" not in skip:
        variants["decode"] = decode_only
    if "file" not in skip:
        variants["file"] = from_file

    # rounds rotated: round r starts at variant r, so load drift spreads over all of them
    names = list(variants)
    walls: dict[str, list[float]] = {}
    for name in names:
        result["rounds"][name] = []
        walls[name] = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            result["rounds"][name].append(timed(variants[name]))
            walls[name].append(timed.last_wall)  # type: ignore[attr-defined]
    result["wall_rounds"] = walls
    print("CPU time, median of rotated rounds (wall-clock median in brackets):")
    for name in names:
        times = result["rounds"][name]
        med = statistics.median(times)
        wmed = statistics.median(walls[name])
        print(f"{name:<13} {messages / med:>12,.0f} msg/s  {med / messages * 1e9:>6,.0f} ns/msg   [wall "
              f"{messages / wmed:>9,.0f} msg/s]  (cpu s: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    if args.baseline:
        med = {n: statistics.median(result["rounds"][n]) for n in names}
        result["speedup"] = {"rules": med["base-rules"] / med["rules"], "context": med["base-context"] / med["context"]}
        print(f"speed-up vs baseline (same run): rules x{result['speedup']['rules']:.2f}, "
              f"context x{result['speedup']['context']:.2f}")

    found = run_checker(records)
    found()
    by_rule: dict[str, int] = {}
    for f in found.findings:  # type: ignore[attr-defined]
        by_rule[f.rule_id] = by_rule.get(f.rule_id, 0) + 1
    result["findings"] = by_rule
    print(f"findings on the session: {by_rule or 'none'}")

    if args.per_rule:
        sl = records[: args.per_rule]
        n = sum(1 for r in sl if isinstance(r, MessageRecord))
        sides = {"": (Checker, all_rules())}
        if args.baseline:
            import importlib

            base_pkg = importlib.import_module(args.baseline.rpartition(":")[2])
            sides["base "] = (base_pkg.Checker, base_pkg.all_rules())
        samples: dict[tuple[str, str], list[float]] = {}
        for side, (checker_cls, classes) in sides.items():
            samples[(side, "")] = []
            for cls in classes:
                samples[(side, cls.id)] = []
        keys = list(samples)

        def one(side: str, rid: str):
            checker_cls, classes = sides[side]
            rules = [] if rid == "" else [next(c for c in classes if c.id == rid)()]

            def go():
                checker = checker_cls(rules=rules)
                checker.feed_all(sl)
                checker.finish()
            return go

        for r in range(3):  # rotated rounds, the floors among them
            order = keys[r * 17 % len(keys):] + keys[: r * 17 % len(keys)]
            for k in order:
                samples[k].append(timed(one(*k)))
        for side in sides:
            floor = statistics.median(samples[(side, "")])
            costs = {k[1]: max(0.0, (statistics.median(v) - floor) / n * 1e9) for k, v in samples.items()
                     if k[0] == side and k[1]}
            result[f"{side}per_rule_ns_per_message".replace(" ", "_")] = costs
            result[f"{side}context_ns_per_message".replace(" ", "_")] = floor / n * 1e9
            top = sorted(costs.items(), key=lambda kv: -kv[1])
            print(f"{side}context floor ({n:,} messages): {floor / n * 1e9:.0f} ns/msg; per-rule extra cost, ns/msg "
                  "(top 15): " + ", ".join(f"{k} {v:.0f}" for k, v in top[:15]))
            print(f"{side}sum of per-rule costs: {sum(costs.values()):.0f} ns/msg")

    result["load_after"] = os.getloadavg()
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    result["summary_msg_per_s"] = {k: messages / statistics.median(v) for k, v in result["rounds"].items()}
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    out = args.out or Path(__file__).parent / "results" / f"bench_check-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
