"""WS2xx: the comm lifecycle (open, message, close, restarts, comm_info)."""

from __future__ import annotations

from typing import Any

from ...message import Direction
from ..base import Rule, Severity, rule
from ..context import FRONTEND, RESTART, Context, Request
from ._util import content, msg_id, parent_id

TO_KERNEL = Direction.TO_KERNEL
TO_FRONTEND = Direction.TO_FRONTEND
# s: a front-end message on a comm the kernel rejected this soon after the comm_close crossed it in flight
CROSSING_WINDOW = 1.0


class CommRule(Rule):
    category = "comm lifecycle"


def _who(rec: Any) -> str:
    return "front-end" if rec.direction is TO_KERNEL else "kernel"


@rule
class UnknownComm(CommRule):
    id = "WS201"
    name = "unknown-comm"
    severity = Severity.WARNING
    title = "Message for a comm that was never opened"
    description = (
        "`comm_msg` and `comm_close` must name a comm that is open: opened by the kernel (IOPub), by a front-end "
        "(shell), or learnt from a `comm_info_reply` or `update_states` (a reloaded page re-attaches to live "
        "comms without a `comm_open`). The receiver drops anything else: the kernel logs \"No such comm\", "
        "JupyterLab returns silently or logs \"Comm not found\"."
    )
    source = "protocol-notes §2.3, §2.4; §6 invariant 12 (`base_comm.py:234-313`, `default.ts:1385-1418`)"
    messages = ("comm_close", "comm_msg:*")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        cid = ctx.cid
        if cid is None or ctx.cur_comm is not None or cid in ctx.old_comms:
            return
        method = ctx.method
        if rec.direction is TO_FRONTEND and method in ("update", "echo_update", "update_states"):
            return  # adopted: the recording began after its comm_open (the context adopts it)
        ctx.report(self, rec.seq, f"{_who(rec)} {rec.msg.msg_type}{' ' + method if method else ''} for comm "
                   f"{cid[:8]}, which was never opened", rec=rec)


@rule
class ClosedComm(CommRule):
    id = "WS202"
    name = "closed-comm"
    severity = Severity.WARNING
    title = "Message on a comm after it was closed"
    description = (
        "No comm message may follow the comm's `comm_close` (from either side). The receiver has already "
        "disposed of the comm and drops the message. Two known-benign cases are reported at info level instead: "
        "a kernel sending on a comm the front-end closed (ipywidgets does it on purpose, WS203), and a front-end "
        "message that crossed, in flight, the kernel's rejection of the comm it had just opened (WS209). Comms "
        "closed by a kernel restart are WS207."
    )
    source = "protocol-notes §2.3; §6 invariant 13 (`messaging.rst:1929-1938`)"
    messages = ("comm_close", "comm_msg:*")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        cid = ctx.cid
        comm = ctx.cur_comm if cid else None
        if comm is None or comm.closed_by is None:
            return
        if rec.direction is TO_FRONTEND and comm.closed_by == FRONTEND:
            return  # the front-end closed it, the kernel still sends: WS203
        if rec.direction is TO_KERNEL and crossed_rejection(comm, rec):
            return  # sent before the front-end got the kernel's rejection: WS209
        ctx.report(self, rec.seq, f"{_who(rec)} {rec.msg.msg_type} on a comm closed by the {comm.closed_by} at "
                   f"seq {comm.close_seq}", rec=rec, comm_id=cid, related=(comm.close_seq or 0,))


def crossed_rejection(comm: Any, rec: Any) -> bool:
    """A front-end message on a comm the kernel rejected, arriving so soon after the rejection that
    the front-end cannot have seen the comm_close yet (WS209)."""
    return comm.rejected and comm.close_t is not None and rec.t - comm.close_t <= CROSSING_WINDOW


@rule
class SendAfterFrontendClose(CommRule):
    id = "WS203"
    name = "send-after-frontend-close"
    severity = Severity.INFO
    title = "Kernel still sends on a comm the front-end closed (known ipywidgets behaviour)"
    description = (
        "When a front-end closes a widget's comm, ipywidgets keeps the Python object (it leaves `Widget._instances` "
        "only through `Widget.close()`), and `BaseComm.send()` does not check whether the comm was closed, so "
        "every later change of the object is still sent, and the widget stays in `update_states`. Front-ends drop "
        "these messages. Harmless, but the traffic is wasted and the widget leaks in the kernel."
    )
    source = "protocol-notes §2.3, §9 item 9; §6 invariant 13 (WARN, 'report as known behaviour')"
    messages = ("comm_msg:*@F",)
    skip_healthy = "comm"

    def __init__(self) -> None:
        self._told: set[str] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.direction is not TO_FRONTEND:
            return
        cid = ctx.cid
        comm = ctx.cur_comm if cid else None
        if comm is None or comm.closed_by != FRONTEND or cid in self._told:
            return
        self._told.add(cid)  # once per comm
        ctx.report(self, rec.seq, f"kernel keeps sending on a comm the front-end closed at seq {comm.f_closed} "
                   "(reported once per comm)", rec=rec, comm_id=cid, related=(comm.f_closed,))


@rule
class DoubleOpen(CommRule):
    id = "WS204"
    name = "double-open"
    severity = Severity.ERROR
    title = "comm_open for a comm id that is already open"
    description = (
        "A comm id may be opened only once while it is open. JupyterLab throws \"Comm is already created\"; "
        "the kernel's comm manager silently replaces the old comm, so the two sides end up holding different "
        "objects under one id."
    )
    source = "protocol-notes §2.4; §6 invariant 11 (`default.ts:1042-1044`, `base_comm.py:223-227`)"
    messages = ("comm_open",)

    def on_message(self, rec: Any, ctx: Context) -> None:
        cid = ctx.cid
        comm = ctx.cur_comm if cid else None
        if comm is not None and comm.closed_by is None:
            ctx.report(self, rec.seq, f"{_who(rec)} opens comm {cid[:8]} again; it is open since seq "
                       f"{comm.open_seq} ({comm.opened_by})", rec=rec, comm_id=cid, related=(comm.open_seq,))


class _OpenWatch(CommRule):
    """Shared by WS205/WS206: follow each front-end comm_open through its busy/idle window."""

    messages = ("comm_open@K", "comm_close@F", "stream@F")

    def __init__(self) -> None:
        # request msg_id -> [comm_id, open record, saw an error on stderr, kernel closed it]
        self._open: dict[str, list[Any]] = {}

    def on_message(self, rec: Any, ctx: Context) -> None:
        t = ctx.msg_type
        if rec.direction is TO_KERNEL:
            if t == "comm_open":
                mid = msg_id(rec)
                self._open[mid] = [ctx.cid, rec, False, False]
                ctx.when_done(mid, self._done)
            return
        if not self._open:
            return
        watch = self._open.get(ctx.parent or "")
        if watch is None:
            return
        if t == "stream":
            c = ctx.content
            text = c.get("text")
            if c.get("name") == "stderr" and isinstance(text, str) and (
                    "No such comm target" in text or "Traceback" in text or "Error" in text):
                watch[2] = True
        elif t == "comm_close" and ctx.cid == watch[0]:
            watch[3] = True

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        watch = self._open.pop(req.msg_id, None)
        if watch is not None and idle is not None:
            self.judge(ctx, req, watch)

    def judge(self, ctx: Context, req: Request, watch: list[Any]) -> None:  # pragma: no cover - overridden
        pass


@rule
class UnansweredRejectedOpen(_OpenWatch):
    id = "WS205"
    name = "open-not-answered"
    severity = Severity.WARNING
    title = "A comm_open the kernel could not handle is not answered by a comm_close"
    description = (
        "\"If the `target_name` key is not found on the receiving side, then it should immediately reply with a "
        "`comm_close` message to avoid an inconsistent state.\" The same holds when the target's handler raises "
        "(e.g. ipywidgets' \"Incompatible widget protocol versions\"). Reported when the kernel wrote an error "
        "to stderr while handling a front-end `comm_open` but sent no `comm_close` for it before its "
        "`status: idle`: the front-end keeps a comm the kernel does not have."
    )
    source = "protocol-notes §2.1, §2.3; §6 invariant 14 (`messaging.rst:1907-1909`, `base_comm.py:253-284`)"

    def judge(self, ctx: Context, req: Request, watch: list[Any]) -> None:
        cid, rec, saw_error, closed = watch
        if saw_error and not closed:
            c = content(rec)
            ctx.report(self, rec.seq, f"the kernel failed to open comm {str(cid)[:8]} (target "
                       f"{c.get('target_name')!r}) but did not close it", rec=rec, comm_id=cid)


@rule
class RejectedOpen(_OpenWatch):
    id = "WS206"
    name = "open-rejected"
    severity = Severity.INFO
    title = "The kernel answered a front-end comm_open with comm_close"
    description = (
        "The kernel closed a comm the front-end had just opened, inside that request's busy/idle window: the "
        "target is not registered in the kernel (\"No such comm target registered\") or its handler raised. "
        "This is the protocol's prescribed answer and often an expected fallback (e.g. the control comm "
        "`jupyter.widget.control` on kernels before ipywidgets 7.7, where the front-end then asks each widget "
        "with `request_state`), so it is informational; look here first when widgets stay \"Loading\"."
    )
    source = "protocol-notes §2.3; bug-patterns B14 (ipywidgets#3525)"

    def judge(self, ctx: Context, req: Request, watch: list[Any]) -> None:
        cid, rec, _saw_error, closed = watch
        if closed:
            c = content(rec)
            ctx.report(self, rec.seq, f"comm {str(cid)[:8]} to target {c.get('target_name')!r} was closed by the "
                       "kernel right away (unknown target or handler error)", rec=rec, comm_id=cid)


@rule
class PreRestartComm(CommRule):
    id = "WS207"
    name = "pre-restart-comm"
    severity = Severity.ERROR
    title = "Message refers to a comm from before a kernel restart"
    description = (
        "A kernel restart (a new kernel `header.session`, or the recorder's `kernel_restarted`/`kernel_exited` "
        "events) ends every comm: the new kernel has none of them and JupyterLab disposes of its comms. A "
        "`comm_msg`, `comm_close` or widget view that still names a comm of an earlier kernel is dropped "
        "(\"No such comm\") or shows \"Error displaying widget: model not found\"."
    )
    source = "protocol-notes §1.3, §2.4; §6 invariant 15 (`messaging.rst:131-150`, `default.ts:1305-1325`)"
    messages = ("comm_close", "comm_msg:*", "display_data@F", "execute_result@F", "update_display_data@F")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        if not ctx.old_comms:
            return
        t = ctx.msg_type
        if t[:5] == "comm_":
            cid = ctx.cid
        else:
            from ...message import widget_view_model_id

            cid = widget_view_model_id(rec.msg)
        if not cid or cid in ctx.comms:
            return
        old = ctx.old_comms.get(cid)
        if old is None or old.closed_by != RESTART:
            return
        ctx.report(self, rec.seq, f"{_who(rec)} {t} names comm {cid[:8]} of kernel epoch {old.epoch}, ended at seq "
                   f"{old.close_seq} (now epoch {ctx.epoch})", rec=rec, comm_id=cid, related=(old.close_seq or 0,))


@rule
class CommInfoReply(CommRule):
    id = "WS208"
    name = "comm-info-reply"
    severity = Severity.WARNING
    title = "comm_info_reply disagrees with the comms the kernel has"
    description = (
        "`comm_info_reply` must have `status: ok`, a `target_name` for each entry, only entries of the requested "
        "target, and list exactly the comms open in the kernel. A front-end reloading the page re-attaches to "
        "widgets from this list: a missing comm is a widget that cannot be shown again, a listed closed comm one "
        "that fails to load. Only comms open (or closed) since before the request and still so at the reply are "
        "compared, so messages in flight do not count."
    )
    source = "protocol-notes §2.2; §6 invariant 16 (`messaging.rst:953-983`, `kernelbase.py:1032-1050`)"
    messages = ("comm_info_request@K", "comm_info_reply@F")

    def __init__(self) -> None:
        self._asked: dict[str, tuple[Any, set[str], set[str]]] = {}

    @staticmethod
    def _sets(ctx: Context, target: Any) -> tuple[set[str], set[str]]:
        open_ids, closed_ids = set(), set()
        for cid, comm in ctx.comms.items():
            if target and comm.target != target:
                continue
            if comm.opened_by == "adopted":
                continue
            (open_ids if comm.k_closed is None else closed_ids).add(cid)
        return open_ids, closed_ids

    def on_message(self, rec: Any, ctx: Context) -> None:
        c = content(rec)
        if rec.direction is TO_KERNEL:
            target = c.get("target_name")
            self._asked[msg_id(rec)] = (target, *self._sets(ctx, target))
            return
        asked = self._asked.pop(parent_id(rec) or "", None)
        if c.get("status") != "ok":
            ctx.report(self, rec.seq, f"comm_info_reply status {c.get('status')!r}", rec=rec)
            return
        comms = c.get("comms")
        if not isinstance(comms, dict):
            ctx.report(self, rec.seq, "comm_info_reply without a comms object", rec=rec)
            return
        if asked is None:
            return
        target, open_before, closed_before = asked
        open_now, closed_now = self._sets(ctx, target)
        problems = []
        for cid, info in comms.items():
            name = info.get("target_name") if isinstance(info, dict) else None
            if not isinstance(name, str):
                problems.append(f"{cid[:8]} has no target_name")
            elif target and name != target:
                problems.append(f"{cid[:8]} has target {name!r}, not the requested {target!r}")
        listed = set(comms)
        missing = (open_before & open_now) - listed
        stale = (closed_before & closed_now) & listed
        if missing:
            problems.append(f"{len(missing)} open comm(s) not listed ({', '.join(sorted(m[:8] for m in missing)[:5])})")
        if stale:
            problems.append(f"{len(stale)} closed comm(s) listed ({', '.join(sorted(s[:8] for s in stale)[:5])})")
        if problems:
            ctx.report(self, rec.seq, "; ".join(problems), rec=rec)


@rule
class CrossedRejection(CommRule):
    id = "WS209"
    name = "crossed-rejection"
    severity = Severity.INFO
    title = "Front-end message crossed the kernel's rejection of a comm it had just opened (known-benign)"
    description = (
        "Front-ends send on a comm right after opening it, without waiting for the kernel: JupyterLab 4 and "
        "Notebook 7 open the `jupyter.widget.control` comm and send `request_states` at once. When the kernel "
        "rejects the `comm_open` (no such target, e.g. ipywidgets not imported yet, or the target's handler "
        "raised) it answers with `comm_close`, and a message the front-end sent before that close reached it "
        "arrives on a comm the kernel has already closed. The kernel drops it (\"No such comm\"); the front-end "
        "takes the close as the answer (for the control comm it falls back to `comm_info_request` and one "
        "`request_state` per widget). Reported once per comm when the message reaches the kernel within 1 s of "
        "the close; a later one means the front-end ignored the close, and is WS202."
    )
    source = ("protocol-notes §2.3, §3.7; bug-patterns B14 (ipywidgets#3525); JupyterLab 4.6 / Notebook 7 "
              "sessions of tests/test_browser.py (`manager-base.ts:382-448`, `base_comm.py:253-297`)")
    messages = ("comm_close@K", "comm_msg:*@K")
    skip_healthy = "comm"

    def __init__(self) -> None:
        self._told: set[str] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        cid = ctx.cid
        comm = ctx.cur_comm if cid else None
        if comm is None or rec.direction is not TO_KERNEL or cid in self._told or not crossed_rejection(comm, rec):
            return
        self._told.add(cid)  # once per comm
        what = f"{rec.msg.msg_type}{' ' + ctx.method if isinstance(ctx.method, str) else ''}"
        ctx.report(self, rec.seq, f"front-end {what} on comm {cid[:8]} ({comm.target}) reached the kernel "
                   f"{(rec.t - comm.close_t) * 1000:.0f} ms after the kernel rejected the comm (comm_close at seq "
                   f"{comm.close_seq}): sent before the front-end could see the close; dropped by the kernel",
                   rec=rec, comm_id=cid, related=(comm.close_seq or 0,))
