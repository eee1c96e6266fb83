"""Run a replay: a fresh kernel behind our own recorder, the engine driving it.

The new kernel is started by `widgetspy record --kernel NAME` (a child
process), so the replayed run is itself recorded in the session format
(`--out`), and `--keep-kernel` can simply leave that recorder running.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..inspectors import Checker, Finding
from ..session import SessionReadError, read_session
from ..proxy.process import RecorderProcess, RecorderStartError
from .compare import MISSING, Divergence, Ignores, diff_digests, near_misses
from .engine import ReplayEngine, recorded_kernel_messages
from .link import KernelLink, LinkError
from .plan import Plan, build_plan


INTERRUPT_AGAIN_AFTER = 1.0  # seconds
LOST_AFTER = 3.0  # seconds without any answer, nothing else running: the request was lost
REPLY_AFTER_IDLE = 2.0  # seconds a reply may trail its request's idle (shell and IOPub race)
OPEN_ENDED_QUIET = 2.0  # seconds of silence that end a request the recording cut short


class ReplayError(Exception):
    """The replay could not run (bad input, kernel failure); str() is one line."""


@dataclass
class ReplayOptions:
    kernel: str | None = None
    pace: str = "idle"
    ignore: list[str] = field(default_factory=list)
    out: Path | None = None
    until: int | None = None
    keep_kernel: bool = False
    timeout: float = 60.0
    include_debug: bool = False


@dataclass
class ReplayResult:
    path: Path
    kernel: str
    plan: Plan
    sent: int
    divergences: list[Divergence]
    notes: list[str]
    elapsed: float  # seconds, kernel start included
    replay_time: float  # seconds from the first message sent to the last answer
    out: Path | None
    kept: RecorderProcess | None = None
    warnings: list[str] = field(default_factory=list)
    new_findings: list[Finding] = field(default_factory=list)  # in the replayed run, not in the recording

    @property
    def identical(self) -> bool:
        return not self.divergences


def load_plan(path: Path, opts: ReplayOptions) -> tuple[Plan, str, Ignores, list[str]]:
    try:
        header, records, warnings = read_session(path)
    except SessionReadError as exc:
        raise ReplayError(str(exc)) from None
    try:
        ignores = Ignores.parse(opts.ignore)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    plan = build_plan(records, include_debug=opts.include_debug, until=opts.until)
    if not plan.steps:
        raise ReplayError(f"{path}: no front-end messages to replay")
    kernel = opts.kernel or header.kernel.get("name") or "python3"
    return plan, kernel, ignores, warnings


def run_replay(
    path: Path, opts: ReplayOptions, on_step: Callable[[int, int, str], None] | None = None
) -> ReplayResult:
    plan, kernel, ignores, warnings = load_plan(path, opts)
    tmp = None
    out = opts.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="widgetspy-replay-")
        out = Path(tmp.name) / "replay.jsonl"
    started = time.monotonic()
    kept = {}
    if opts.keep_kernel:  # the kernel outlives us: a lasting connection file, a detached recorder
        from jupyter_core.paths import jupyter_runtime_dir

        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"widgetspy-replay-{os.getpid()}"
        kept = {"connection_file": runtime / f"{name}.json", "log": runtime / f"{name}.log"}
    try:
        rec = RecorderProcess(out, kernel, **kept).start()
    except RecorderStartError as exc:
        raise ReplayError(f"cannot start kernel {kernel!r}: {exc}") from None
    link = KernelLink(str(rec.connection_file))
    keep = False
    try:
        try:
            link.warm_up(opts.timeout)
        except LinkError as exc:
            raise ReplayError(str(exc)) from None
        engine = ReplayEngine(plan, opts.pace)
        replay_time = _drive(engine, link, rec, opts, on_step)
        divergences = []
        teardown = Ignores(categories=set(Ignores.CATEGORIES) - {"reply"})
        for step, expected, actual in engine.digests():
            # a shutdown's output is the old kernel's teardown noise: only its reply counts
            rules = teardown if step.msg_type == "shutdown_request" else ignores
            divergences.extend(diff_digests(expected, actual, step.seq, step.describe(), rules))
        recorded = recorded_kernel_messages(plan)
        for dv in divergences:
            if dv.expected == MISSING and dv.msg_type:
                dv.near = near_misses(dv.msg_type, dv.actual, recorded)
        divergences.sort(key=lambda d: d.seq)
        keep = opts.keep_kernel
        if not keep:
            rec.stop()
        new_findings = _new_findings(plan, out)
        return ReplayResult(
            path=path, kernel=kernel, plan=plan, sent=len(engine.sent_seqs), divergences=divergences,
            notes=engine.notes, elapsed=time.monotonic() - started, replay_time=replay_time, out=opts.out,
            kept=rec if keep else None, warnings=warnings, new_findings=new_findings,
        )
    finally:
        link.close()
        if not keep:
            rec.__exit__(None, None, None)
            if tmp is not None:
                tmp.cleanup()


def _new_findings(plan: Plan, replayed: Path) -> list[Finding]:
    """Inspector findings (warning and up) of the replayed run that the recording
    did not have, compared by rule and model class (ids differ between runs)."""
    def key(f: Finding) -> tuple[str, str]:
        return (f.rule_id, f.model_name or "")

    before = {key(f) for f in Checker().check(plan.records)}
    try:
        _, records, _ = read_session(replayed)
    except SessionReadError:
        return []
    cutoff = _last_replayed_seq(records)
    return [f for f in Checker().check(records)
            if f.severity.label != "info" and key(f) not in before and f.seq <= cutoff]


def _last_replayed_seq(records: list) -> int:
    """The replayed run ends where our own Ctrl-C begins (its shutdown is not the recording's)."""
    for rec in records:
        if getattr(rec, "event", None) == "stop_requested":
            return rec.seq
    return records[-1].seq if records else 0


def _drive(
    engine: ReplayEngine, link: KernelLink, rec: RecorderProcess, opts: ReplayOptions,
    on_step: Callable[[int, int, str], None] | None,
) -> float:
    """Send every step and collect the answers; returns the seconds it took."""
    steps = engine.plan.steps
    first_t = steps[0].t
    t0 = time.monotonic()
    last_news = time.monotonic()
    resent_lost = False
    interrupted: set[int] = set()  # shell requests running when an interrupt was replayed
    interrupt_at = 0.0
    idle_since: dict[int, float] = {}  # requests idle with no reply yet -> when we noticed
    while not engine.finished():
        if rec.proc is not None and rec.proc.poll() is not None:
            raise ReplayError(
                f"the kernel exited (status {rec.proc.returncode}) while waiting for {engine.waiting_for()}"
            )
        if engine.needs_kernel_probe():
            try:
                link.warm_up(opts.timeout)
            except LinkError as exc:
                raise ReplayError(f"after its restart, {exc}") from None
            engine.kernel_back()
            last_news = time.monotonic()
        wait = 0.2
        while (step := engine.ready()) is not None:
            if opts.pace == "recorded":
                due = t0 + (step.t - first_t)
                if time.monotonic() < due:
                    wait = min(wait, due - time.monotonic())
                    break
            header = link.send(step.peer, engine.build(step))
            engine.sent(step, header["msg_id"])
            if step.msg_type == "interrupt_request":
                interrupted = {r for r in engine.running() if engine.step_of[r].channel.value == "shell"}
                interrupt_at = time.monotonic()
            last_news = time.monotonic()
            if on_step:
                on_step(engine.position, len(steps), step.describe())
        if interrupted:
            # a request that went idle is over, reply or not: interrupting it again would go on forever
            interrupted = {r for r in interrupted if r in engine.running() and r not in engine.idle}
        if interrupted and time.monotonic() - interrupt_at > INTERRUPT_AGAIN_AFTER:
            # ipykernel ignores an interrupt that comes before it runs user code;
            # a person would press the button again, and so do we
            link.interrupt(engine.step_of[min(interrupted)].peer)
            engine.notes.append(f"interrupt sent again for @{min(interrupted)} (the first came before the cell ran)")
            interrupt_at = time.monotonic()
        for channel, msg in link.poll(max(0.0, wait)):
            engine.received(channel, msg)
            last_news = time.monotonic()
            resent_lost = False

        now = time.monotonic()
        for request in engine.idle_without_reply():
            noticed = idle_since.setdefault(request, now)
            if now - noticed > REPLY_AFTER_IDLE:
                engine.give_up_reply(request, now - noticed)
        if engine.position >= len(steps) and now - last_news > OPEN_ENDED_QUIET:
            for request in engine.open_ended():
                engine.stop_waiting(request, now - last_news)
        if time.monotonic() - last_news > LOST_AFTER and not resent_lost:
            # Requests can get lost between the proxy and the kernel (seen rarely,
            # under investigation): with nothing else running, a request the kernel
            # never started is sent again, and the report says so.
            for step in engine.lost():
                header = link.send(step.peer, engine.build(step))
                engine.resent(step, header["msg_id"])
                engine.notes.append(f"@{step.seq} {step.describe()} got no answer for {LOST_AFTER:.0f} s with the "
                                    "kernel idle: lost on the way, sent again")
            resent_lost = True
        if time.monotonic() - last_news > opts.timeout:
            raise ReplayError(f"no answer from the kernel for {opts.timeout:.0f} s while waiting for {engine.waiting_for()}")
    return time.monotonic() - t0
