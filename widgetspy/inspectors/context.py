"""What every rule needs to know, kept once per session: comms and their
lifetimes, the requests the kernel is working on, kernel epochs, and for
widget models the two projected states (kernel view, front-end view).

This is a deliberately small cousin of `widgetspy.timeline.Timeline`, built
for speed: no change log, no history, only the current beliefs, updated in
place. It follows the same rules as the timeline (docs/timeline.md): kernel
messages change both views when seen; a front-end message changes the
front-end view when sent and the kernel view when the kernel starts
processing it (its `status: busy`, or the first IOPub message parented to
it); `echo_update` is filtered the way ipywidgets' JS model does; full states
(the reply to `request_state`, `update_states`) replace a side's state.

Per message the checker calls `begin(rec)` first: it reads the fields every
rule needs once (msg_type, msg_id, parent id, comm_id, `content.data`, its
method and state, the comm, the parent request) into the context's "current
message" attributes, which the rules read instead of re-deriving them. Then
the rules see the record, then `apply(rec)` updates the beliefs, so a rule
sees the state *before* the message it is looking at. Sans-IO.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ..buffers import put_buffers
from ..message import CONTROL_TARGET, WIDGET_TARGET, Channel, Direction
from ..session.records import KERNEL_EXITED, KERNEL_RESTARTED, EventRecord, MessageRecord
from .base import Finding, Rule, Severity, excerpt_of

if TYPE_CHECKING:  # pragma: no cover
    from ..timeline import Timeline

KERNEL = "kernel"
FRONTEND = "frontend"
ADOPTED = "adopted"
RESTART = "restart"

TO_KERNEL = Direction.TO_KERNEL
TO_FRONTEND = Direction.TO_FRONTEND
SHELL = Channel.SHELL
IOPUB = Channel.IOPUB
STDIN = Channel.STDIN

FINISHED_KEPT = 4096  # finished requests remembered (late side effects, echo parents)
REUSED_KEPT = 4096  # msg_ids used by more than one request, remembered (Context.reused)
REUSED_PER_ID = 8  # requests remembered per reused msg_id

# Context.health of the message being checked (see Context.begin)
NOT_OK, WIRE_OK, COMM_OK = 0, 1, 2
OVERSIZE = 8 * 1024 * 1024  # bytes on the wire from which WS410 reports
KERNEL_STATES = frozenset({"busy", "idle", "starting"})  # status.execution_state values a kernel sends


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class CommInfo:
    """A comm as the checker knows it. For `jupyter.widget` comms also the
    model's identity and its two projected states."""

    __slots__ = (
        "comm_id", "target", "epoch", "opened_by", "open_seq", "open_t", "open_msg_id", "open_parent",
        "version", "identity", "model_name", "model_module", "model_module_version", "is_model",
        "kstate", "fstate", "expected_echo", "k_closed", "f_closed", "closed_by", "close_seq", "close_t",
        "close_parent", "changed",
    )

    def __init__(self, comm_id: str, target: str, epoch: int, opened_by: str, seq: int, t: float,
                 msg_id: str | None, parent: str | None, version: str | None) -> None:
        self.comm_id = comm_id
        self.target = target
        self.epoch = epoch
        self.opened_by = opened_by
        self.open_seq = seq
        self.open_t = t
        self.open_msg_id = msg_id
        self.open_parent = parent  # parent msg_id of a kernel comm_open (the request that made it)
        self.version = version  # comm_open metadata.version
        self.identity: dict[str, Any] = {}
        self.model_name: str | None = None
        self.model_module: str | None = None
        self.model_module_version: str | None = None
        self.is_model = target == WIDGET_TARGET
        self.kstate: dict[str, Any] = {}
        self.fstate: dict[str, Any] = {}
        self.expected_echo: dict[str, str] = {}
        self.k_closed: int | None = None  # seq the kernel side closed it
        self.f_closed: int | None = None  # seq the front-end side closed it
        self.closed_by: str | None = None  # kernel | frontend | restart
        self.close_seq: int | None = None
        self.close_t: float | None = None  # when the kernel's comm_close was seen
        self.close_parent: Any = None  # parent msg_id of the kernel's comm_close (the request it answered)
        # keys whose kstate/fstate value may have changed since a consumer (WS402) last compared the
        # two projections and reset it to an empty set; None: all of them (new comm, replaced state)
        self.changed: set[str] | None = None

    @property
    def is_open(self) -> bool:
        return self.k_closed is None and self.f_closed is None

    @property
    def closed(self) -> bool:
        return self.closed_by is not None

    @property
    def rejected(self) -> bool:
        """The kernel closed this front-end comm while handling its comm_open: no such target, or
        the target's handler raised (protocol-notes §2.3). The front-end learns it from the
        comm_close; what it sent on the comm before that is dropped by the kernel."""
        return (self.closed_by == KERNEL and self.opened_by == FRONTEND and self.open_msg_id is not None
                and self.close_parent == self.open_msg_id)

    def learn_identity(self, state: dict[str, Any]) -> None:
        if self.identity or "_model_name" not in state:
            return
        self.identity = {k: state[k] for k in IDENTITY_KEYS if k in state}
        name = state.get("_model_name")
        module = state.get("_model_module")
        version = state.get("_model_module_version")
        self.model_name = name if isinstance(name, str) else None
        self.model_module = module if isinstance(module, str) else None
        self.model_module_version = version if isinstance(version, str) else None


IDENTITY_KEYS = ("_model_name", "_model_module", "_model_module_version", "_view_name", "_view_module",
                 "_view_module_version")
IDENTITY_SET = frozenset(IDENTITY_KEYS)


class Request:
    """A message sent to the kernel (shell/control), from send to its `status: idle`."""

    __slots__ = ("msg_id", "msg_type", "seq", "t", "channel", "peer", "comm_id", "method", "epoch",
                 "busy_seq", "busy_t", "idle_seq", "idle_t", "code", "rec", "waiters", "subshell", "abandoned")

    def __init__(self, rec: MessageRecord, msg_type: str, epoch: int) -> None:
        msg = rec.msg
        self.msg_id: str = msg.header.get("msg_id") or f"@{rec.seq}"
        self.msg_type = msg_type
        self.seq = rec.seq
        self.t = rec.t
        self.channel = rec.channel
        self.peer = rec.peer
        self.comm_id: str | None = None
        self.method: str | None = None
        self.epoch = epoch
        self.busy_seq: int | None = None
        self.busy_t: float | None = None
        self.idle_seq: int | None = None
        self.idle_t: float | None = None
        self.code: str | None = None
        self.rec = rec
        self.waiters: list[Callable[["Context", "Request", MessageRecord | None], None]] | None = None
        self.subshell = msg.header.get("subshell_id")
        self.abandoned = False  # the kernel went on to later requests without an idle for this one

    @property
    def label(self) -> str:
        """How findings name it: the msg_type, and a comm_msg's method ("comm_msg update")."""
        return self.msg_type + (f" {self.method}" if self.method else "")

    @property
    def lane(self) -> tuple[Any, Any]:
        """Requests in one lane are served one at a time (a channel, or a subshell of shell)."""
        return self.channel, self.subshell


EMPTY: dict[str, Any] = {}  # ctx.content/ctx.data when the message has none (never mutated)
_EMPTY = EMPTY


class Context:
    def __init__(self, timeline: "Timeline | None" = None) -> None:
        self.timeline = timeline  # optional: shared with other consumers; the rules here do not need it
        self.findings: list[Finding] = []
        self.epoch = 0
        self.epoch_started_by = "first message"
        self.kernel_session: str | None = None
        self.comms: dict[str, CommInfo] = {}  # current epoch, open and closed
        self.old_comms: dict[str, CommInfo] = {}  # comms of earlier kernel epochs
        self.requests: dict[str, Request] = {}  # sent, not idle yet
        self.finished: dict[str, Request] = {}  # the latest FINISHED_KEPT, oldest first
        self._finished_order: deque[str] = deque()
        self.pending_fe: dict[str, MessageRecord] = {}  # front-end comm messages the kernel has not started
        # msg_id -> every request sent with it, oldest first, for the ids more than one request used
        # (`requests`/`finished` keep the latest only); the latest REUSED_KEPT ids
        self.reused: dict[str, list[Request]] = {}
        self.busy_count = 0  # requests with a busy and no idle yet
        self.dirty: set[str] = set()  # models whose projections changed since the last quiet point
        self.last_seq = 0
        self.last_t = 0.0
        self.messages = 0
        self.echo_seen = False  # this kernel epoch sent at least one echo_update
        self.quiet_hooks: list[Callable[["Context", MessageRecord], None]] = []
        self.epoch_end_hooks: list[Callable[["Context", int, str], None]] = []
        self.rule_instances: dict[str, Rule] = {}
        self._current_id: str | None = None  # msg_id of the record being checked (to the kernel only)
        self._early: list[Callable[["Context", Request, MessageRecord | None], None]] = []
        # ---- the message being checked, read once by begin() (valid from begin() to apply())
        self.msg_type: str = ""  # header.msg_type ("" if missing)
        self.msg_id: Any = None  # header.msg_id, as it is
        self.parent: Any = None  # parent_header.msg_id, as it is (None if no parent header)
        self.content: dict[str, Any] = _EMPTY  # content ({} if not an object)
        self.cid: str | None = None  # content.comm_id if a string
        self.data: dict[str, Any] = _EMPTY  # content.data ({} if none or not an object)
        self.method: Any = None  # data.method, as it is
        self.state: dict[str, Any] | None = None  # data.state if an object
        self.cur_comm: CommInfo | None = None  # the comm `cid` names in the current epoch
        self.parent_req: Request | None = None  # the request `parent` names, running or finished
        self.health = NOT_OK  # NOT_OK, WIRE_OK or COMM_OK (see begin)

    # ================================================================ reporting

    def report(self, rule: Rule | type[Rule], seq: int, message: str, *, rec: Any = None,
               comm_id: str | None = None, t: float | None = None, related: tuple[int, ...] = (),
               severity: Severity | None = None) -> Finding:
        comm = self.comm(comm_id) if comm_id else None
        name = (comm.model_name or (None if comm.is_model else comm.target)) if comm else None
        if name is None and comm_id and rec is not None and getattr(rec, "msg", None) is not None:
            c = rec.msg.content  # a comm_open the context has not applied yet
            d = c.get("data") if isinstance(c, dict) else None
            st = d.get("state") if isinstance(d, dict) else None
            name = st.get("_model_name") if isinstance(st, dict) and isinstance(st.get("_model_name"), str) else None
        finding = Finding(
            rule_id=rule.id,
            severity=severity or rule.severity,
            seq=seq,
            message=message,
            t=t if t is not None else (rec.t if rec is not None else self.last_t),
            model_id=comm_id,
            model_name=name,
            excerpt=excerpt_of(rec) if rec is not None else "",
            related_seq=related,
        )
        self.findings.append(finding)
        return finding

    # ================================================================ queries

    def comm(self, comm_id: str | None) -> CommInfo | None:
        """The comm with this id in the current epoch, else in an earlier one."""
        if not comm_id:
            return None
        return self.comms.get(comm_id) or self.old_comms.get(comm_id)

    def request(self, msg_id: str | None) -> Request | None:
        """A request sent to the kernel, running or finished (None if unknown)."""
        if not msg_id:
            return None
        return self.requests.get(msg_id) or self.finished.get(msg_id)

    def when_done(self, msg_id: str, fn: Callable[["Context", Request, MessageRecord | None], None]) -> None:
        """Call fn(ctx, request, idle_record) at the request's `status: idle`,
        or with idle_record None when its kernel epoch ends / the session ends first."""
        req = self.requests.get(msg_id)
        if req is None:
            if self._current_id == msg_id:  # the request being fed right now: attach when it is applied
                self._early.append(fn)
            return
        if req.waiters is None:
            req.waiters = []
        req.waiters.append(fn)

    def quiet(self) -> bool:
        """Nothing is running in the kernel and no front-end message waits for it."""
        return self.busy_count <= 0 and not self.pending_fe

    # ================================================================ feeding

    def begin(self, rec: MessageRecord) -> str:
        """Read what the rules share from a message about to be checked; returns its dispatch key
        (`<msg_type or comm_msg:method>@K|F`) and sets `health`:

        - WIRE_OK: the header has the six string fields (msg_id, msg_type, username, session, version,
          date), the JSON was strict (no NaN/Infinity), the message is under 8 MiB (and has a size, or
          no buffers), and a `status` has execution_state busy, idle or starting;
        - COMM_OK (with WIRE_OK, `comm_msg` only): on the right channel (shell to the kernel, IOPub
          from it), a non-empty string comm_id naming an open (closed by no side) `jupyter.widget`
          comm of the current kernel epoch, a `data` object whose method is `update`/`echo_update`
          with a state object holding no `_model_*`/`_view_*` key and no buffer_paths or buffers,
          `custom` with a `content`, or `request_state`.
        Rules that cannot report on such a message say so with `skip_healthy`."""
        msg = rec.msg
        header = msg.header
        mtype = header.get("msg_type") or ""
        self.msg_type = mtype
        self.msg_id = mid = header.get("msg_id")
        ph = msg.parent_header
        parent = ph.get("msg_id") if ph.__class__ is dict else None
        self.parent = parent
        content = msg.content
        if content.__class__ is dict:
            self.content = content
            data = content.get("data")
            if data.__class__ is not dict:
                data = EMPTY
            cid = content.get("comm_id")
            if cid.__class__ is not str:
                cid = None
        else:
            self.content = data = EMPTY
            cid = None
        self.data = data
        self.cid = cid
        self.cur_comm = comm = self.comms.get(cid) if cid is not None else None
        if data:
            method = data.get("method")
            state = data.get("state")
            if state.__class__ is not dict:
                state = None
        else:
            method = state = None
        self.method = method
        self.state = state
        if parent:
            try:
                self.parent_req = self.requests.get(parent) or self.finished.get(parent)
            except TypeError:  # an unhashable parent msg_id: names no request
                self.parent_req = None
        else:
            self.parent_req = None
        to_kernel = rec.direction is TO_KERNEL
        # ---- health (see the docstring)
        health = NOT_OK
        size = rec.size
        if rec.strict_json and (size or not msg.buffers) and size < OVERSIZE:
            try:
                if (header.__class__ is dict and header["msg_id"].__class__ is str
                        and header["msg_type"].__class__ is str and header["username"].__class__ is str
                        and header["session"].__class__ is str and header["version"].__class__ is str
                        and header["date"].__class__ is str):
                    health = WIRE_OK
            except KeyError:
                pass
            if mtype == "comm_msg":
                if (health and comm is not None and comm.closed_by is None and comm.is_model and cid
                        and rec.channel is (SHELL if to_kernel else IOPUB)):
                    if method == "update" or method == "echo_update":
                        if (state is not None and not data.get("buffer_paths") and not msg.buffers
                                and IDENTITY_SET.isdisjoint(state)):
                            health = COMM_OK
                    elif method == "request_state" or (method == "custom" and "content" in data):
                        health = COMM_OK
            elif mtype == "status":
                st = self.content.get("execution_state")
                if st.__class__ is not str or st not in KERNEL_STATES:
                    health = NOT_OK
        self.health = health
        if mtype == "comm_msg":
            mtype = "comm_msg:" + method if method.__class__ is str else "comm_msg:"
        if to_kernel:
            self._current_id = mid
            return mtype + "@K"
        return mtype + "@F"

    def apply(self, rec: Any) -> None:
        """Update the beliefs with a record the rules have seen (after begin() for a message)."""
        self._current_id = None
        self.last_seq = rec.seq
        self.last_t = rec.t
        if rec.__class__ is MessageRecord:
            self.messages += 1
            if rec.direction is TO_FRONTEND:
                self._from_kernel(rec)
            else:
                self._to_kernel(rec)
        elif rec.__class__ is EventRecord:
            self._event(rec)

    # ---------------------------------------------------------------- epochs

    def _event(self, rec: EventRecord) -> None:
        if rec.event == KERNEL_EXITED:
            self.end_epoch(rec.seq, KERNEL_EXITED)
        elif rec.event == KERNEL_RESTARTED:
            if self.epoch_started_by == "new kernel session":
                self.epoch_started_by = KERNEL_RESTARTED  # the new kernel spoke first
                return
            self.end_epoch(rec.seq, KERNEL_RESTARTED)

    def end_epoch(self, seq: int, reason: str) -> None:
        """The kernel process is gone: close its comms, give up on its requests."""
        if not self.comms and not self.requests and self.kernel_session is None and self.epoch_started_by == "ended":
            return
        for hook in self.epoch_end_hooks:
            hook(self, seq, reason)
        for req in list(self.requests.values()):
            self._finish_request(req, None)
        self.requests.clear()
        self.pending_fe.clear()
        self.busy_count = 0
        for comm in self.comms.values():
            if comm.k_closed is None:
                comm.k_closed = seq
            if comm.f_closed is None:
                comm.f_closed = seq
            if comm.closed_by is None:
                comm.closed_by, comm.close_seq = RESTART, seq
            self.old_comms[comm.comm_id] = comm
        self.comms = {}
        self.dirty.clear()
        self.epoch += 1
        self.epoch_started_by = "ended"
        self.kernel_session = None
        self.echo_seen = False

    # ---------------------------------------------------------------- requests

    def _finish_request(self, req: Request, idle: MessageRecord | None) -> None:
        waiters = req.waiters
        if waiters:
            req.waiters = None
            for fn in waiters:
                fn(self, req, idle)
        finished = self.finished
        n = len(finished)
        finished[req.msg_id] = req  # a msg_id seen again keeps its place, as in an OrderedDict
        if len(finished) > n:
            self._finished_order.append(req.msg_id)
            if n >= FINISHED_KEPT:
                del finished[self._finished_order.popleft()]

    def _reuse(self, old: Request, req: Request) -> None:
        """A request reuses the msg_id of an earlier one (WS103 judges the reuse, WS106 the replies)."""
        reused = self.reused
        same = reused.get(req.msg_id)
        if same is None:
            if len(reused) >= REUSED_KEPT:
                del reused[next(iter(reused))]
            reused[req.msg_id] = [old, req]
        else:
            if len(same) >= REUSED_PER_ID:  # a client that reuses one id for everything: keep the first and the latest
                del same[1]
            same.append(req)

    def _abandon_before(self, done: Request) -> None:
        """The kernel finished `done`: any request of the same lane that went busy
        before it and has no idle never will (WS407 reports it)."""
        lane = done.lane
        stale = [r for r in self.requests.values()
                 if r.busy_seq is not None and r.busy_seq < done.busy_seq and r.lane == lane]  # type: ignore[operator]
        for r in stale:
            r.abandoned = True
            del self.requests[r.msg_id]
            self.busy_count -= 1
            self._finish_request(r, None)

    # ---------------------------------------------------------------- front-end -> kernel

    def _to_kernel(self, rec: MessageRecord) -> None:
        msg_type = self.msg_type
        channel = rec.channel
        if channel is STDIN:
            self._early = []
            return
        req = Request(rec, msg_type, self.epoch)
        if msg_type == "execute_request":
            code = self.content.get("code")
            req.code = code if isinstance(code, str) else None
        requests = self.requests
        mid = req.msg_id
        old = requests.get(mid) or self.finished.get(mid)
        if old is not None:
            self._reuse(old, req)
        requests[mid] = req
        if self._early:
            req.waiters = self._early
            self._early = []
        if msg_type[:5] != "comm_":
            return
        cid = self.cid
        if cid is None:
            return
        req.comm_id = cid
        data = self.data
        if msg_type == "comm_msg":
            method = self.method
            req.method = method if isinstance(method, str) else None
        if channel is not SHELL:
            return
        msg = rec.msg
        if msg_type == "comm_open":
            comm, state = self._comm_open(cid, FRONTEND, rec, None)
            if state is not None:
                comm.fstate = dict(state)
                self.dirty.add(cid)
            self.pending_fe[req.msg_id] = rec
            return
        comm = self.cur_comm
        if msg_type == "comm_close":
            if comm is not None and comm.f_closed is None:
                comm.f_closed = rec.seq
                if comm.closed_by is None:
                    comm.closed_by, comm.close_seq = FRONTEND, rec.seq
            self.pending_fe[req.msg_id] = rec
            return
        if comm is None or not comm.is_model:
            return
        if req.method == "update":
            state = self.state
            if state is None:
                return
            if data.get("buffer_paths") or msg.buffers:
                state = self._state(data, msg.buffers)
            expected = comm.expected_echo
            mid = req.msg_id
            for key in state:
                expected[key] = mid
            if comm.f_closed is None:
                comm.fstate.update(state)
                if comm.changed is not None:
                    comm.changed.update(state)
                self.dirty.add(cid)
            self.pending_fe[mid] = rec

    def _kernel_processes(self, msg_id: str) -> None:
        rec = self.pending_fe.pop(msg_id)
        msg = rec.msg
        cid = msg.content.get("comm_id")
        comm = self.comms.get(cid) if isinstance(cid, str) else None
        if comm is None:
            return
        msg_type = msg.header.get("msg_type")
        if msg_type == "comm_open":
            if comm.is_model:
                data = msg.content.get("data")
                state = self._state(data if isinstance(data, dict) else {}, msg.buffers)
                comm.kstate = dict(state) if state else {}
                comm.changed = None
        elif msg_type == "comm_close":
            if comm.k_closed is None:
                comm.k_closed = rec.seq
        elif comm.is_model and comm.k_closed is None:
            data = msg.content.get("data")
            state = self._state(data if isinstance(data, dict) else {}, msg.buffers)
            if state:
                comm.kstate.update(state)
                if comm.changed is not None:
                    comm.changed.update(state)
                self.dirty.add(comm.comm_id)

    # ---------------------------------------------------------------- kernel -> front-end

    def _from_kernel(self, rec: MessageRecord) -> None:
        msg = rec.msg
        session = msg.header.get("session")
        if session and session != self.kernel_session and rec.channel is not Channel.HB:
            if self.kernel_session is None:
                self.kernel_session = session
                if self.epoch_started_by == "ended":
                    self.epoch_started_by = "new kernel session"
            else:
                self.end_epoch(rec.seq, "new kernel session")
                self.kernel_session = session
                self.epoch_started_by = "new kernel session"
                # the comms and requests begin() looked up belong to the epoch that just ended
                self.cur_comm = self.comms.get(self.cid) if self.cid is not None else None
                self.parent_req = self.request(self.parent)
        parent = self.parent
        if parent is not None and self.pending_fe and parent in self.pending_fe:
            self._kernel_processes(parent)
        msg_type = self.msg_type
        if msg_type == "status":
            state = self.content.get("execution_state")
            req = self.requests.get(parent) if parent else None
            if state == "busy":
                if req is not None and req.busy_seq is None:
                    req.busy_seq, req.busy_t = rec.seq, rec.t
                    self.busy_count += 1
            elif state == "idle" and req is not None:
                if req.busy_seq is not None:
                    self.busy_count -= 1
                req.idle_seq, req.idle_t = rec.seq, rec.t
                del self.requests[parent]
                self._finish_request(req, rec)
                if req.busy_seq is not None and self.busy_count > 0:
                    self._abandon_before(req)
                if self.quiet_hooks and self.quiet():
                    for hook in self.quiet_hooks:
                        hook(self, rec)
                    self.dirty.clear()
            return
        if msg_type == "comm_info_reply":
            comms = self.content.get("comms")
            if isinstance(comms, dict):
                for cid, info in comms.items():
                    if cid not in self.comms:
                        target = info.get("target_name") if isinstance(info, dict) else None
                        comm = self._open(cid, target if isinstance(target, str) else "?", ADOPTED, rec, None, {})
                        comm.open_seq = rec.seq
            return
        if msg_type[:5] != "comm_":
            return
        cid = self.cid
        if cid is None:
            return
        data = self.data
        if msg_type == "comm_open":
            comm, state = self._comm_open(cid, KERNEL, rec, parent)
            if state is not None:
                comm.kstate = dict(state)
                comm.fstate = dict(state)
            return
        comm = self.cur_comm
        if msg_type == "comm_close":
            if comm is not None:
                if comm.k_closed is None:
                    comm.k_closed = rec.seq
                if comm.f_closed is None:
                    comm.f_closed = rec.seq
                if comm.closed_by is None:
                    comm.closed_by, comm.close_seq = KERNEL, rec.seq
                    comm.close_t, comm.close_parent = rec.t, parent
            return
        method = self.method
        if method == "update_states":
            self._update_states(rec, data)
            return
        if comm is None:
            if method in ("update", "echo_update") and self.state is not None:
                comm = self._open(cid, WIDGET_TARGET, ADOPTED, rec, None, {})
            else:
                return
        if not comm.is_model:
            return
        if method == "update":
            state = self.state
            if state is None:
                return
            if data.get("buffer_paths") or msg.buffers:
                state = self._state(data, msg.buffers)
            if not comm.identity and "_model_name" in state:
                comm.learn_identity(state)
            req = self.parent_req
            if req is not None and req.method == "request_state" and req.comm_id == cid:
                comm.kstate = dict(state)
                if comm.f_closed is None:
                    comm.fstate = dict(state)
                comm.changed = None
            else:
                comm.kstate.update(state)
                if comm.f_closed is None:
                    comm.fstate.update(state)
                if comm.changed is not None:
                    comm.changed.update(state)
            self.dirty.add(cid)
        elif method == "echo_update":
            self.echo_seen = True
            state = self.state
            if state is None:
                return
            if data.get("buffer_paths") or msg.buffers:
                state = self._state(data, msg.buffers)
            expected = comm.expected_echo
            fstate = comm.fstate
            open_f = comm.f_closed is None
            for key, value in state.items():
                want = expected.get(key)
                if want is None:
                    if open_f:
                        fstate[key] = value
                elif want == parent:
                    del expected[key]
                    if open_f:
                        fstate[key] = value
            if self.parent_req is None:  # echo of an update this tap did not see
                comm.kstate.update(state)
            if comm.changed is not None:
                comm.changed.update(state)
            self.dirty.add(cid)

    def _update_states(self, rec: MessageRecord, data: dict[str, Any]) -> None:
        states = data.get("states")
        if not isinstance(states, dict):
            return
        paths = data.get("buffer_paths") or []
        if paths and isinstance(paths, list):
            try:
                fixed = []
                for p in paths:
                    if isinstance(p, list) and len(p) >= 2 and p[1] != "state" and isinstance(states.get(p[0]), dict):
                        p = [p[0], "state", *p[1:]]
                    fixed.append(p)
                states = put_buffers(states, fixed, rec.msg.buffers, errors=[])
            except Exception:  # pragma: no cover - malformed input is another rule's business
                pass
        for model_id, entry in states.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("state"), dict):
                continue
            state = dict(entry["state"])
            for outer, inner in (("model_name", "_model_name"), ("model_module", "_model_module"),
                                 ("model_module_version", "_model_module_version")):
                if inner not in state and isinstance(entry.get(outer), str):
                    state[inner] = entry[outer]
            comm = self.comms.get(model_id)
            if comm is None:
                comm = self._open(model_id, WIDGET_TARGET, ADOPTED, rec, None, {})
            if not comm.is_model:
                continue
            comm.learn_identity(state)
            if comm.k_closed is None:
                comm.kstate = dict(state)
            if comm.f_closed is None:
                comm.fstate = dict(state)
            comm.changed = None
            self.dirty.add(model_id)

    # ---------------------------------------------------------------- helpers

    def _comm_open(self, cid: str, by: str, rec: MessageRecord, parent: str | None) -> tuple[CommInfo, dict | None]:
        """A comm_open from either side: the comm, and for a widget model its state (identity learned)."""
        target = self.content.get("target_name")
        comm = self._open(cid, target if isinstance(target, str) else "?", by, rec, parent, rec.msg.metadata)
        if not comm.is_model:
            return comm, None
        state = self._state(self.data, rec.msg.buffers)
        if state is not None:
            comm.learn_identity(state)
        return comm, state

    def _open(self, cid: str, target: str, by: str, rec: MessageRecord, parent: str | None,
              metadata: Any) -> CommInfo:
        version = metadata.get("version") if isinstance(metadata, dict) else None
        comm = CommInfo(cid, target, self.epoch, by, rec.seq, rec.t, rec.msg.header.get("msg_id"), parent,
                        version if isinstance(version, str) else None)
        self.comms[cid] = comm
        return comm

    @staticmethod
    def _state(data: Any, buffers: list[bytes]) -> dict[str, Any] | None:
        if data.__class__ is not dict:
            return None
        state = data.get("state")
        if state.__class__ is not dict:
            return None
        paths = data.get("buffer_paths")
        if not paths and not buffers:
            return state
        if not isinstance(paths, list):
            return state
        return put_buffers(state, paths, buffers, errors=[])


def is_control(comm: CommInfo | None) -> bool:
    return comm is not None and comm.target == CONTROL_TARGET
