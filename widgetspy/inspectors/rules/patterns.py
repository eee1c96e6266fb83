"""WS4xx: bug patterns seen in real ipywidgets/JupyterLab issues
(../shared/docs/bug-patterns.md), as they show in the traffic."""

from __future__ import annotations

from typing import Any

from ...message import WIDGET_TARGET, Channel, Direction, widget_view_model_id
from ..base import Rule, Severity, rule
from ..context import Context, Request
from ._util import comm_id, data, json_size, major, msg_id, short
from .widget import _equal, refs_in_state
from .wire import REPLY_TYPES

TO_KERNEL = Direction.TO_KERNEL
TO_FRONTEND = Direction.TO_FRONTEND
SHELL = Channel.SHELL
CORE_MODULES = ("@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output")


class PatternRule(Rule):
    category = "bug pattern"


def installed_module_versions() -> dict[str, str]:
    """Core module -> version in the ipywidgets installed here ({} without ipywidgets)."""
    try:
        from ipywidgets import _version  # type: ignore[import-not-found]
    except Exception:  # pragma: no cover - ipywidgets is optional for checking
        return {}
    out = {}
    for module, attr in (("@jupyter-widgets/base", "__jupyter_widgets_base_version__"),
                         ("@jupyter-widgets/controls", "__jupyter_widgets_controls_version__"),
                         ("@jupyter-widgets/output", "__jupyter_widgets_output_version__")):
        value = getattr(_version, attr, None)
        if isinstance(value, str):
            out[module] = value
    return out


@rule
class VersionSkew(PatternRule):
    id = "WS401"
    name = "version-skew"
    severity = Severity.WARNING
    title = "Kernel and front-end widget versions disagree"
    description = (
        "The kernel's ipywidgets and the front-end's widget manager must speak the same major versions: the "
        "widget protocol (`comm_open` metadata `version`) and each core module's `_model_module_version` "
        "(ipywidgets 8: base/controls 2.x; ipywidgets 7: base 1.x, controls 1.x). Reported when a front-end "
        "opens a widget with a core module or protocol major different from what the kernel uses (learnt from "
        "the kernel's own `comm_open`s, or, before any, from the ipywidgets installed where the check runs), "
        "when the kernel rejects a front-end widget with \"Incompatible widget protocol versions\" or a class "
        "lookup error, and when a front-end uses protocol 1's `backbone` method. In the browser this is "
        "\"Failed to load model class\" / \"Module @jupyter-widgets/controls, version ^1.5.0 is not registered\"."
    )
    source = "bug-patterns B1 (ipywidgets#3577, #3559); protocol-notes §3.1, §6 invariant 17"
    messages = ("comm_open", "comm_msg:backbone@K", "stream@F")

    def __init__(self) -> None:
        self._kernel_modules: dict[str, str] = {}  # module -> a version the kernel uses
        self._kernel_protocol: str | None = None
        self._installed: dict[str, str] | None = None
        self._told: set[tuple[str, str]] = set()
        self._fe_opens: dict[str, Any] = {}  # front-end widget comm_open request id -> record

    def _say(self, ctx: Context, rec: Any, key: tuple[str, str], text: str, cid: str | None) -> None:
        if key in self._told:
            return
        self._told.add(key)
        ctx.report(self, rec.seq, text, rec=rec, comm_id=cid)

    def on_message(self, rec: Any, ctx: Context) -> None:
        t = ctx.msg_type
        cid = ctx.cid
        if t == "stream":
            if rec.direction is TO_FRONTEND and self._fe_opens:
                parent = ctx.parent or ""
                opened = self._fe_opens.get(parent)
                text = ctx.content.get("text")
                if opened is not None and isinstance(text, str) and (
                        "Incompatible widget protocol" in text or "KeyError" in text):
                    why = "Incompatible widget protocol versions" if "Incompatible" in text else \
                        "the kernel has no such model class/version"
                    self._say(ctx, opened, ("rejected", comm_id(opened) or ""),
                              f"the kernel rejected the front-end's widget ({why}): {self._fe_desc(opened)}",
                              comm_id(opened))
            return
        if t == "comm_msg":
            if rec.direction is TO_KERNEL:
                self._say(ctx, rec, ("backbone", cid or ""), "front-end uses protocol 1's 'backbone' method on a "
                          "protocol 2 kernel", cid)
            return
        if ctx.content.get("target_name") != WIDGET_TARGET:
            return
        state = ctx.data.get("state")
        state = state if isinstance(state, dict) else {}
        module, version = state.get("_model_module"), state.get("_model_module_version")
        meta = rec.msg.metadata
        protocol = meta.get("version") if isinstance(meta, dict) else None
        if rec.direction is TO_FRONTEND:
            if isinstance(module, str) and isinstance(version, str):
                self._kernel_modules.setdefault(module, version)
            if isinstance(protocol, str):
                self._kernel_protocol = protocol
            return
        self._fe_opens[msg_id(rec)] = rec
        ctx.when_done(msg_id(rec), lambda _c, req, _i: self._fe_opens.pop(req.msg_id, None))
        if isinstance(protocol, str) and self._kernel_protocol and major(protocol) != major(self._kernel_protocol):
            self._say(ctx, rec, ("protocol", protocol), f"front-end speaks widget protocol {protocol}, the kernel "
                      f"{self._kernel_protocol}", cid)
        if module not in CORE_MODULES or not isinstance(version, str):
            return
        known = self._kernel_modules.get(module)
        where = "the kernel uses"
        if known is None:
            if self._installed is None:
                self._installed = installed_module_versions()
            known = self._installed.get(module)
            where = "the ipywidgets installed here has (the kernel has sent none yet)"
        if known is not None and major(known) != major(version):
            self._say(ctx, rec, (module, version), f"front-end opens {state.get('_model_name')} with {module} "
                      f"{version}; {where} {known}", cid)

    @staticmethod
    def _fe_desc(rec: Any) -> str:
        state = data(rec).get("state")
        state = state if isinstance(state, dict) else {}
        meta = rec.msg.metadata
        return (f"{state.get('_model_name')} {state.get('_model_module')} {state.get('_model_module_version')}, "
                f"protocol {meta.get('version') if isinstance(meta, dict) else None}")


@rule
class LostUpdate(PatternRule):
    id = "WS402"
    name = "lost-update"
    severity = Severity.ERROR
    title = "Kernel and front-end still disagree when the kernel goes idle (lost update)"
    description = (
        "Two projections are kept per model: the kernel's (front-end updates applied when the kernel starts "
        "processing them) and the front-end's (its own updates when sent, kernel messages when they arrive, "
        "echoes filtered like ipywidgets' JS model). When the kernel goes idle with nothing pending they must "
        "agree. They do not when a front-end update was queued while the kernel ran a cell that set the same "
        "trait: the kernel ends with the front-end's value, the front-end with the kernel's, and nobody "
        "notices. `echo_update` (ipywidgets 8) repairs it; kernels without echo (ipywidgets 7, or traits that "
        "opt out) do not. Reported once per model and key until the two agree again."
    )
    source = "bug-patterns B4 (ipywidgets#3111, fixed by #3195/#3394); protocol-notes §3.4, §5.4"

    def __init__(self) -> None:
        self._diverged: set[tuple[str, str]] = set()

    def on_quiet(self, ctx: Context, rec: Any) -> None:
        # Each comparison leaves every compared key settled (agreeing and not marked diverged, or
        # disagreeing and marked), so only keys the context saw change since this comm was last
        # compared (`comm.changed`; None: all of them) can give a different answer now.
        comms = ctx.comms
        diverged = self._diverged
        for cid in ctx.dirty:
            comm = comms.get(cid)
            if comm is None or not comm.is_model or comm.closed_by is not None:
                continue
            kstate, fstate = comm.kstate, comm.fstate
            changed = comm.changed
            if changed is None:
                keys: Any = fstate
                comm.changed = set()
            else:
                keys = changed
            bad = []
            for key in keys:
                fv = fstate.get(key, kstate)
                if fv is kstate:
                    continue  # changed, but not in the front-end's projection
                kv = kstate.get(key, fstate)
                if kv is fstate or kv is fv:
                    continue
                if _equal(kv, fv):
                    diverged.discard((cid, key))
                    continue
                if (cid, key) not in diverged:
                    diverged.add((cid, key))
                    bad.append(key)
            if changed is not None:
                changed.clear()  # compared: comm.changed starts again from here
            if bad:
                if changed is not None and len(bad) > 1:  # report them in the state's order
                    bad = [k for k in fstate if k in bad]
                bad = [f"{key}: kernel {short(kstate[key], 24)}, front-end {short(fstate[key], 24)}" for key in bad]
                ctx.report(self, rec.seq, f"at idle the two sides disagree: {'; '.join(bad)}", rec=None, comm_id=cid,
                           t=rec.t)


FEEDBACK_BOUNCES = 3


@rule
class EchoFeedbackLoop(PatternRule):
    id = "WS403"
    name = "echo-feedback-loop"
    severity = Severity.WARNING
    title = "A front-end re-sends values it just received (echo feedback loop)"
    description = (
        "A front-end `update(k=v)` right after the kernel's `echo_update(k=v)` of *another* front-end's message "
        "(its parent came from another connection) is the front-end feeding the echo back: "
        "with two tabs, or a view that saves on every change event, each echo triggers a new update and the "
        "values ping-pong, amplifying traffic and making sliders jitter. Reported after 3 such bounces on one "
        "model key."
    )
    source = "bug-patterns B5 (ipywidgets PR #3195 discussion, nteract#1896, bqplot#330), B16"
    messages = ("comm_msg:update", "comm_msg:echo_update@F")

    def __init__(self) -> None:
        # comm -> key -> (value, origin peer, seq) of the kernel's latest echo of a front-end's value; a
        # later kernel message without an origin (not an echo) drops the key: nothing to bounce
        self._last: dict[str, dict[str, tuple[Any, Any, int]]] = {}
        self._bounces: dict[tuple[str, str], int] = {}
        self._told: set[tuple[str, str]] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        state = ctx.state
        if state is None:
            return
        cid = ctx.cid or ""
        last = self._last.get(cid)
        if rec.direction is TO_FRONTEND:
            req = ctx.parent_req
            # only echoes carry another front-end's value back: remember whose message they echo
            origin = req.peer if req is not None and ctx.method == "echo_update" else None
            if origin is None:
                if last:
                    for key in state:
                        if key in last:
                            del last[key]
                return
            if last is None:
                last = self._last[cid] = {}
            seq = rec.seq
            for key, value in state.items():
                last[key] = (value, origin, seq)
            return
        if not last:
            return
        peer = rec.peer
        for key, value in state.items():
            prev = last.get(key)
            if prev is None or prev[1] == peer or not _equal(prev[0], value):
                continue
            k = (cid, key)
            n = self._bounces.get(k, 0) + 1
            self._bounces[k] = n
            if n >= FEEDBACK_BOUNCES and k not in self._told:
                self._told.add(k)
                ctx.report(self, rec.seq, f"front-end sent {key}={short(value, 24)} back right after the kernel "
                           f"sent it (seq {prev[2]}); {n} bounces on this key so far", rec=rec, comm_id=cid,
                           related=(prev[2],))


STORM_KERNEL = 100  # kernel updates of one model for one request
STORM_INFLIGHT = 10  # front-end updates of one model the kernel has not finished


@rule
class UpdateStorm(PatternRule):
    id = "WS404"
    name = "update-storm"
    severity = Severity.WARNING
    title = "Update storm: too many updates of one model at once"
    description = (
        "Either the kernel sends more than 100 `update`s of one model while handling one request (a loop setting "
        "a trait: every step is a message, IOPub's 1000 msg/s rate limit drops some and the front-end lags), or "
        "a front-end has more than 10 `update`s of one model in flight (sent, kernel not idle for them yet). "
        "ipywidgets' JS model keeps at most one update in flight and merges the rest (`_pending_msgs`), so a "
        "deep queue means broken throttling and every queued change costs a busy/echo/idle round."
    )
    source = "bug-patterns B5, B9, B12 (ipywidgets#3469/#3470, voila#766); protocol-notes §3.4 (front-end sync throttle)"
    messages = ("comm_msg:update",)

    def __init__(self) -> None:
        self._kernel: dict[str, dict[str, int]] = {}  # request msg_id -> comm -> kernel updates for it
        self._inflight: dict[str, int] = {}
        self._told: set[Any] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        cid = ctx.cid or ""
        if rec.direction is TO_FRONTEND:
            parent = ctx.parent or ""
            counts = self._kernel.get(parent)
            if counts is None:
                counts = self._kernel[parent] = {}
            n = counts.get(cid, 0) + 1
            counts[cid] = n
            if n == 1 and parent in ctx.requests:
                ctx.when_done(parent, self._done)
            if n == STORM_KERNEL + 1 and (parent, cid) not in self._told:
                key = (parent, cid)
                self._told.add(key)
                req = ctx.request(parent)
                what = f"{req.msg_type} at seq {req.seq}" if req else "one request"
                ctx.report(self, rec.seq, f"the kernel sent more than {STORM_KERNEL} updates of this model for "
                           f"{what}", rec=rec, comm_id=cid, related=(req.seq,) if req else ())
            return
        n = self._inflight.get(cid, 0) + 1
        self._inflight[cid] = n
        ctx.when_done(ctx.msg_id or f"@{rec.seq}", self._fe_done)
        if n == STORM_INFLIGHT + 1 and ("fe", cid) not in self._told:
            self._told.add(("fe", cid))
            ctx.report(self, rec.seq, f"the front-end has {n} updates of this model in flight (the kernel has not "
                       "finished them): throttling is broken", rec=rec, comm_id=cid)

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        self._kernel.pop(req.msg_id, None)

    def _fe_done(self, ctx: Context, req: Request, idle: Any) -> None:
        cid = req.comm_id or ""
        n = self._inflight.get(cid, 1) - 1
        if n <= 0:
            self._inflight.pop(cid, None)
            self._told.discard(("fe", cid))
        else:
            self._inflight[cid] = n


REDUNDANT_BYTES = 1024


@rule
class RedundantResend(PatternRule):
    id = "WS405"
    name = "redundant-resend"
    severity = Severity.WARNING
    title = "Unchanged state re-sent (bytes wasted)"
    description = (
        "An `update` that carries a key whose value the receiving side already holds (per its projection) moves "
        "bytes for nothing: `send_state()` of a whole widget, a `touch()` of every attribute, large arrays "
        "re-sent on each change. Echoes and full-state resyncs (`request_state` replies, `update_states`) are "
        "meant to repeat state and are not counted. Reported per model key once the waste reaches 1 KiB (small "
        "no-op updates are ignored)."
    )
    source = "bug-patterns B6 (ipywidgets#1195, PR #3216)"
    messages = ("comm_msg:update",)

    def __init__(self) -> None:
        self._waste: dict[tuple[str, str], list[int]] = {}
        self._told: set[tuple[str, str]] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        state = ctx.state
        if state is None:
            return
        cid = ctx.cid
        comm = ctx.cur_comm if cid is not None else ctx.comms.get("")
        cid = cid or ""
        if comm is None or not comm.is_model:
            return
        if rec.direction is TO_FRONTEND:
            if comm.f_closed is not None:
                return
            req = ctx.parent_req
            if req is not None and req.method == "request_state" and req.comm_id == cid:
                return  # a resync
            have = comm.fstate
        else:
            have = comm.kstate
        d = ctx.data
        if d.get("buffer_paths") or rec.msg.buffers:
            state = Context._state(d, rec.msg.buffers) or state
        for key, value in state.items():
            old = have.get(key, have)
            if old is have:
                continue
            if old is not value:
                c = old.__class__
                if c is value.__class__ and (c is int or c is str or c is float):
                    if old != value:  # what _equal says for two ints, strings or floats
                        continue
                elif not _equal(old, value):
                    continue
            if key.startswith("_"):
                continue
            k = (cid, key)
            acc = self._waste.get(k)
            if acc is None:
                acc = self._waste[k] = [0, 0]
            acc[0] += 1
            acc[1] += json_size(value)
            if acc[1] >= REDUNDANT_BYTES and k not in self._told:
                self._told.add(k)
                who = "front-end" if rec.direction is TO_KERNEL else "kernel"
                ctx.report(self, rec.seq, f"{who} re-sent unchanged {key!r}: {acc[0]} time(s), {acc[1]} bytes "
                           "wasted so far", rec=rec, comm_id=cid)


@rule
class CommLeak(PatternRule):
    id = "WS406"
    name = "comm-leak"
    severity = Severity.WARNING
    title = "Widgets pile up across re-executions of the same cell (comm leak)"
    description = (
        "Re-running a cell that creates widgets makes new models; the old ones stay alive in the kernel (and in "
        "every front-end) unless someone calls `close()`. Reported per cell (same code) executed at least twice, "
        "at the end of the kernel's life: the widgets its earlier runs created that are still open, are not "
        "referenced by another open widget and were not displayed since the latest run began. Layout and style "
        "children are not counted separately."
    )
    source = "bug-patterns B13 (ipywidgets#3995, #1345, anywidget#929)"
    messages = ("execute_request@K", "comm_open@F", "display_data@F", "execute_result@F", "update_display_data@F")

    def __init__(self) -> None:
        self._runs: dict[str, list[tuple[str, int, list[str]]]] = {}  # code -> [(msg_id, seq, model ids)]
        self._run_of: dict[str, list[str]] = {}  # execute msg_id -> its model list
        self._viewed: dict[str, int] = {}  # model id -> seq of its latest view

    def on_message(self, rec: Any, ctx: Context) -> None:
        t = ctx.msg_type
        if t == "execute_request":
            if rec.direction is not TO_KERNEL:
                return
            code = ctx.content.get("code")
            if not isinstance(code, str) or not code.strip():
                return
            models: list[str] = []
            mid = msg_id(rec)
            self._runs.setdefault(code, []).append((mid, rec.seq, models))
            self._run_of[mid] = models
            return
        if rec.direction is not TO_FRONTEND:
            return
        if t == "comm_open":
            run = self._run_of.get(ctx.parent or "")
            if run is not None and ctx.content.get("target_name") == WIDGET_TARGET:
                cid = ctx.cid
                if cid:
                    run.append(cid)
            return
        mid = widget_view_model_id(rec.msg)
        if mid:
            self._viewed[mid] = rec.seq

    def on_epoch_end(self, ctx: Context, seq: int, reason: str) -> None:
        self._judge(ctx)
        self._runs.clear()
        self._run_of.clear()
        self._viewed.clear()

    def finish(self, ctx: Context) -> None:
        self._judge(ctx)

    def _judge(self, ctx: Context) -> None:
        referenced: set[str] = set()
        for comm in ctx.comms.values():
            if comm.is_model and comm.closed_by is None:
                for _path, target in refs_in_state(comm.kstate):
                    if target != comm.comm_id:
                        referenced.add(target)
        for code, runs in self._runs.items():
            if len(runs) < 2:
                continue
            last_seq = runs[-1][1]
            leaked = []
            for _mid, _seq, models in runs[:-1]:
                for cid in models:
                    comm = ctx.comms.get(cid)
                    if comm is None or comm.closed_by is not None or cid in referenced:
                        continue
                    if self._viewed.get(cid, -1) > last_seq:
                        continue
                    leaked.append(comm)
            if leaked:
                names = sorted({(c.model_name or "?").removesuffix("Model") for c in leaked})
                first = code.strip().splitlines()[0]
                ctx.report(self, runs[-1][1], f"cell run {len(runs)} times ({first[:40]!r}): {len(leaked)} widget(s) "
                           f"from earlier runs still open, unreferenced and not shown ({', '.join(names[:5])})",
                           comm_id=leaked[0].comm_id, related=tuple(r[1] for r in runs[:-1]))


@rule
class MissingIdle(PatternRule):
    id = "WS407"
    name = "missing-idle"
    severity = Severity.ERROR
    title = "A request got status: busy but never status: idle"
    description = (
        "Every shell/control request gets one IOPub `status: busy` and, after its side effects, one "
        "`status: idle` parented to it; comm messages included. Reported when the kernel went on to a later "
        "request of the same channel (or subshell) without the idle. Front-ends wait for that idle: JupyterLab "
        "keeps the cell busy, and ipywidgets' sync throttle counts a widget update as pending until its idle, "
        "so a missing idle after an `update` stalls every further update of that model. A request whose msg_id "
        "another request also used is left out: its statuses cannot be told from the other's (WS106 reports the "
        "reuse; jupyter_server's connect-time kernel_info nudges do it on every legacy-framing reconnect)."
    )
    source = "protocol-notes §1.5, §3.4; §6 invariant 6 (`messaging.rst:432-447`, `widget.ts:372-395,516-545`); bug-patterns B12"
    messages = ("status@F",)

    def on_message(self, rec: Any, ctx: Context) -> None:
        if ctx.busy_count <= 0:
            return
        if ctx.content.get("execution_state") != "idle":
            return
        done = ctx.requests.get(ctx.parent or "")
        if done is None or done.busy_seq is None:
            return
        if done.msg_id in ctx.reused:
            return  # which request this idle closes cannot be told
        lane = done.lane
        for req in ctx.requests.values():
            if req is not done and req.busy_seq is not None and req.busy_seq < done.busy_seq and req.lane == lane:
                if req.msg_id in ctx.reused:
                    continue
                what = req.label
                ctx.report(self, req.seq, f"{what} (seq {req.seq}) went busy at seq {req.busy_seq} and never idle; "
                           f"the kernel finished a later request at seq {rec.seq}", rec=req.rec,
                           comm_id=req.comm_id, related=(req.busy_seq, rec.seq))


NEVER_STARTED_AFTER = 2.0  # seconds a request may wait with its lane free (a healthy kernel takes ms)


@rule
class NeverStarted(PatternRule):
    id = "WS411"
    name = "request-never-started"
    severity = Severity.ERROR
    title = "A request the kernel never started, though it served later ones"
    description = (
        "A kernel serves the requests of one lane (a channel, or a subshell of shell) one after the other, and "
        "each starts with an IOPub `status: busy`. A request that never got a busy or a reply, while the same "
        "kernel went busy for a request sent after it on that lane, was lost inside the kernel: the front-end "
        "waits for it forever (a cell stuck at [*], a widget update that never lands). ipykernel 7.0 to 7.3 do "
        "this now and then, when a request arrives just as the shell thread sends a reply. Judged at the end of "
        "the session (ZMQ routers interleave clients, so a request may start after a later one of another "
        "client). Also reported: a request that got neither in the 2 s or more between its lane falling free "
        "and the end of the session or of the kernel. Requests whose msg_id another request also used are left out."
    )
    source = ("protocol-notes §1.5 (a busy and an idle for every request); ipython/ipykernel#1554 (requests "
              "lost in ipykernel 7.0-7.3, fixed on its main branch by #1529)")
    messages = ("status@F",) + tuple(t + "@F" for t in REPLY_TYPES)

    def __init__(self) -> None:
        self._suspects: dict[str, tuple[Request, Request]] = {}  # msg_id -> (not started, the later one that was)
        self._answered: set[str] = set()  # replied to (its busy may have gone before IOPub was subscribed)
        self._free_since: dict[Any, float] = {}  # lane -> time of its last idle

    def on_message(self, rec: Any, ctx: Context) -> None:
        parent = ctx.parent
        if not parent:
            return
        self._suspects.pop(parent, None)  # it started (or answered) after all
        if ctx.msg_type != "status":
            answered = self._answered
            answered.add(parent)
            if len(answered) > 4096:  # keep only requests still waiting for an idle
                self._answered = {m for m in answered if m in ctx.requests}
            return
        state = ctx.content.get("execution_state")
        if state == "idle":
            done = ctx.request(parent)
            if done is not None:
                self._free_since[done.lane] = rec.t
            return
        if state != "busy":
            return
        started = ctx.request(parent)
        if started is None:
            return
        lane = started.lane
        for req in ctx.requests.values():
            if (req.seq < started.seq and req.busy_seq is None and req.lane == lane and req.epoch == started.epoch
                    and req.msg_id != parent and req.msg_id not in ctx.reused and req.msg_id not in self._suspects
                    and req.msg_id not in self._answered):
                self._suspects[req.msg_id] = (req, started)

    def on_epoch_end(self, ctx: Context, seq: int, reason: str) -> None:
        self._judge(ctx)  # before the context gives up on this kernel's requests

    def finish(self, ctx: Context) -> None:
        self._judge(ctx)

    def _judge(self, ctx: Context) -> None:
        for req, later in self._suspects.values():
            what = req.label
            ctx.report(self, req.seq, f"{what} (seq {req.seq}) got no busy and no reply; the kernel started "
                       f"{later.msg_type} (seq {later.seq}), sent after it, and went on", rec=req.rec,
                       comm_id=req.comm_id, related=(later.seq,))
        self._suspects.clear()
        # nothing later to compare with: the kernel sat idle on that lane until the session (or kernel) ended
        running = {r.lane for r in ctx.requests.values() if r.busy_seq is not None}
        for req in ctx.requests.values():
            waited = ctx.last_t - max(req.t, self._free_since.get(req.lane, 0.0))
            if (req.busy_seq is None and waited >= NEVER_STARTED_AFTER and req.lane not in running
                    and req.msg_id not in self._answered and req.msg_id not in ctx.reused):
                what = req.label
                ctx.report(self, req.seq, f"{what} (seq {req.seq}) got no busy and no reply in the {waited:.1f} s "
                           "its channel was free before the session (or the kernel) ended", rec=req.rec,
                           comm_id=req.comm_id)
                self._answered.add(req.msg_id)  # reported once


OUTPUT_TYPES = ("stream", "display_data", "execute_result", "update_display_data", "clear_output", "error")


@rule
class OutputAfterIdle(PatternRule):
    id = "WS408"
    name = "output-after-idle"
    severity = Severity.WARNING
    title = "Output parented to a request that is already idle"
    description = (
        "\"The idle status message indicates that IOPub messages associated with a given request have all been "
        "received\". Output that arrives later with that request as parent (typically from a thread the cell "
        "started) is routed by front-ends to a cell that has finished, or to an Output widget that no longer "
        "captures: it lands in the wrong place or is dropped. Reported once per request."
    )
    source = "protocol-notes §1.5 (caveat on threads); bug-patterns B7 (ipywidgets#2358, #2907, #4020)"
    messages = tuple(t + "@F" for t in OUTPUT_TYPES)

    def __init__(self) -> None:
        self._told: set[str] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.direction is not TO_FRONTEND:
            return
        parent = ctx.parent
        if not parent:
            return
        req = ctx.finished.get(parent)
        if req is None or req.idle_seq is None or parent in self._told:
            return
        self._told.add(parent)
        ctx.report(self, rec.seq, f"{rec.msg.msg_type} for {req.msg_type} (seq {req.seq}) after its idle at seq "
                   f"{req.idle_seq}", rec=rec, related=(req.seq, req.idle_seq))


@rule
class QueuedBehindExecute(PatternRule):
    id = "WS409"
    name = "queued-behind-execute"
    severity = Severity.INFO
    title = "Front-end comm message queued behind a running cell (latency)"
    description = (
        "The kernel serves the shell channel one message at a time, so a widget message sent while a cell runs "
        "waits until the cell ends: a figure that does not update, a value Python does not see yet, a loop "
        "waiting on a widget that never ends. Reported per message with its latency (send → the kernel's "
        "`status: busy` for it) and the `execute_request` it waited behind (when that cell's `status: idle` came "
        "visibly later than the message). Subshells (protocol 5.5, "
        "`subshell_id`) avoid the wait."
    )
    source = "bug-patterns B15 (ipympl#258, anywidget#788, notebook#7126); protocol-notes §1.1 (subshells)"
    messages = ("comm_open@K", "comm_close@K", "comm_msg:*@K", "status@F")

    def __init__(self) -> None:
        self._queued: dict[str, tuple[Any, Request]] = {}

    def on_message(self, rec: Any, ctx: Context) -> None:
        if ctx.msg_type == "status":
            if not self._queued:
                return
            q = self._queued.pop(ctx.parent or "", None)
            if q is None:
                return
            sent, blocker = q
            if ctx.content.get("execution_state") != "busy":
                return
            if blocker.idle_t is None or blocker.idle_t <= sent.t:
                # not visibly queued: the recorder may write one capture batch's channels out of causal
                # order, and then the cell's idle carries the same time as the message
                return
            latency = rec.t - sent.t
            code = (blocker.code or "").strip().splitlines()
            first = code[0][:40] if code else ""
            method = data(sent).get("method")
            ctx.report(self, sent.seq, f"front-end {sent.msg.msg_type}{' ' + method if method else ''} waited "
                       f"{latency:.3f} s behind execute_request at seq {blocker.seq} ({first!r})", rec=sent,
                       comm_id=comm_id(sent), related=(blocker.seq, rec.seq), t=sent.t)
            return
        if rec.direction is not TO_KERNEL or rec.channel is not SHELL or not ctx.requests:
            return
        sub = rec.msg.header.get("subshell_id")
        for req in ctx.requests.values():
            if req.msg_type == "execute_request" and req.channel is SHELL and req.subshell == sub:
                self._queued[ctx.msg_id or f"@{rec.seq}"] = (rec, req)
                return


OVERSIZE = 8 * 1024 * 1024
WS_LIMIT = 10 * 1024 * 1024


@rule
class Oversized(PatternRule):
    id = "WS410"
    name = "oversized-message"
    severity = Severity.WARNING
    title = "Message near or over the 10 MiB websocket limit"
    description = (
        "jupyter_server's websocket (tornado) refuses messages over 10 MiB by default (`max_message_size`): "
        "the connection closes with code 1009 and the kernel connection is lost. Reported for messages of 8 MiB "
        "or more on the wire (a large `FileUpload`, an image, an `update_states` with many widgets): send "
        "data in chunks, or raise the server's limit."
    )
    source = "bug-patterns B11 (notebook#3468, xeus-python#268); protocol-notes messages.md note on update_states"
    messages = ("*",)
    skip_healthy = "wire"

    def on_message(self, rec: Any, ctx: Context) -> None:
        size = rec.size
        if size < OVERSIZE:
            if size or not rec.msg.buffers:
                return
            size = sum(len(b) for b in rec.msg.buffers)
            if size < OVERSIZE:
                return
        over = "over" if size > WS_LIMIT else "near"
        ctx.report(self, rec.seq, f"{rec.msg.msg_type} is {size / 1048576:.1f} MiB, {over} the 10 MiB websocket "
                   "limit", rec=rec, comm_id=ctx.cid)

