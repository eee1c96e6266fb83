"""WS6xx: rules that need both taps (the kernel's ZMQ side and the browser's
websocket), from `widgetspy record --web -- jupyter lab` sessions.

They pair the two copies of each message by msg_id. They are registered like
every rule (select, ignore, `widgetspy rules`, docs/rules.md) and marked
`both_taps`: a `Checker(taps=header.taps)` of a two-tap session feeds them
every record while the one-tap rules get the ZMQ copy only, and leaves them
out of a one-tap session, where they would have nothing to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...message import CONTROL_TARGET, WIDGET_TARGET, Channel, Direction
from ..base import Rule, Severity, rule
from ..context import Context
from ._util import comm_id, content, data, parent_id

TO_KERNEL = Direction.TO_KERNEL
TO_FRONTEND = Direction.TO_FRONTEND
RATE_NOTICE = "IOPub message rate exceeded"
DATA_NOTICE = "IOPub data rate exceeded"
NOT_FORWARDED = frozenset({"iopub_welcome"})  # the server consumes these itself
# the server's rate limiter never drops these (and status replies to its own connect-time nudges
# may legitimately be lost while its IOPub stream for a new socket comes up)
RATE_EXEMPT = frozenset({"status", "comm_open", "execute_input"})
GRACE = 1.0  # s: kernel messages this close to a websocket close count as lost to the close, not dropped
REQUEST_STATES_TIMEOUT = 4.0  # s: the front-end's control-comm timeout (ipywidgets manager-base)


class BothTapsRule(Rule):
    category = "both taps"
    both_taps = True  # the Checker runs it on two-tap sessions only, with every record


@dataclass
class _Sent:
    seq: int
    t: float
    key: str  # comm id, or "(msg_type)" for messages of no comm
    msg_type: str


@rule
class IopubDropped(BothTapsRule):
    id = "WS601"
    name = "iopub-dropped"
    severity = Severity.WARNING
    title = "IOPub messages the kernel sent never reached the browser (rate limit)"
    description = (
        "Compares the kernel's IOPub messages (ZMQ tap) with what the browser received (websocket tap) while a "
        "websocket was open. jupyter_server drops every IOPub message but status, comm_open and execute_input "
        "once a kernel exceeds `iopub_msg_rate_limit` (or `iopub_data_rate_limit` for streams) until the rate "
        "falls, and tells the browser with an \"IOPub message rate exceeded\" stderr stream. Widget `comm_msg` "
        "updates lost this way leave the front-end's models behind the kernel. Reported per comm: how many "
        "were lost, their seq range on the ZMQ tap, and the last/next message the browser did get. Fix: "
        "`hold_sync()`, batching, or a higher `ServerApp.iopub_msg_rate_limit`."
    )
    source = ("bug-patterns B9 (ipycanvas#102, jdaviz#4223); protocol-notes §4.4; §6 invariant 35 "
              "(jupyter_server `channels.py:50-90,723-836`)")
    messages = ("*",)
    events = ("ws_connected", "ws_closed")

    def __init__(self) -> None:
        self.open = 0
        self.ws_seen = False
        self.pending: dict[str, _Sent] = {}  # zmq msg_id -> sent while a websocket was open
        self.zmq_seq: dict[str, int] = {}  # forwarded IOPub msg_id -> its zmq seq, until its ws copy arrives
        self.dropped: list[_Sent] = []
        self.delivered_ws: dict[str, list[int]] = {}  # key -> ws seqs delivered (for the gap)
        self.notices: list[int] = []
        self.totals: dict[str, int] = {}

    def on_event(self, rec: Any, ctx: Context) -> None:
        if rec.event == "ws_connected":
            self.open += 1
            self.ws_seen = True
        elif rec.event == "ws_closed":
            self.open = max(0, self.open - 1)
            if self.open == 0:  # what was still pending when the last socket closed: lost to the close
                cutoff = rec.t - GRACE
                self.dropped.extend(s for s in self.pending.values() if s.t < cutoff)
                self.pending.clear()
                self.zmq_seq.clear()

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.direction is not TO_FRONTEND or rec.channel is not Channel.IOPUB:
            return
        mid = rec.msg.header.get("msg_id")
        mtype = rec.msg.header.get("msg_type") or ""
        key = comm_id(rec) or f"({mtype})"
        if rec.tap == "zmq":
            if self.open and mid and mtype not in NOT_FORWARDED:
                self.zmq_seq[mid] = rec.seq
                if mtype not in RATE_EXEMPT:
                    self.pending[mid] = _Sent(rec.seq, rec.t, key, mtype)
                    self.totals[key] = self.totals.get(key, 0) + 1
        elif rec.tap == "ws":
            if mid is not None:
                self.pending.pop(mid, None)
                # IOPub keeps its order through the server: what the kernel sent before this one and the
                # browser has not got by now was skipped, not merely in flight
                sent = self.zmq_seq.pop(mid, None)
                if sent is not None and self.pending:
                    for k in [k for k, s in self.pending.items() if s.seq < sent]:
                        self.dropped.append(self.pending.pop(k))
            self.delivered_ws.setdefault(key, []).append(rec.seq)
            if mtype == "stream":
                text = rec.msg.content.get("text") if isinstance(rec.msg.content, dict) else None
                if isinstance(text, str) and (RATE_NOTICE in text or DATA_NOTICE in text):
                    self.notices.append(rec.seq)

    def finish(self, ctx: Context) -> None:
        if not self.ws_seen:
            return
        lost = self.dropped + list(self.pending.values())  # pending at the end: the browser never got them
        by_key: dict[str, list[_Sent]] = {}
        for s in lost:
            by_key.setdefault(s.key, []).append(s)
        for key, items in sorted(by_key.items(), key=lambda kv: kv[1][0].seq):
            items.sort(key=lambda s: s.seq)
            first, last = items[0], items[-1]
            ws = self.delivered_ws.get(key, [])
            before = max((q for q in ws if q < first.seq), default=None)
            after = min((q for q in ws if q > last.seq), default=None)
            types = sorted({s.msg_type for s in items})
            where = f"comm {key[:8]}" if not key.startswith("(") else f"{key[1:-1]} messages"
            gap = f"; the browser got seq {before} then {after}" if before or after else ""
            notice = f"; server said \"{RATE_NOTICE}\" at seq {self.notices[0]}" if self.notices else ""
            ctx.report(
                self, first.seq,
                f"{len(items)} of {self.totals.get(key, len(items))} IOPub {'/'.join(types)} on {where} never reached "
                f"the browser (zmq seq {first.seq}..{last.seq}){gap}{notice}",
                comm_id=None if key.startswith("(") else key, t=first.t,
                related=tuple(s.seq for s in items[1:6]) + tuple(self.notices[:1]),
            )


@dataclass
class _Reconnect:
    seq: int
    t: float
    session_id: str | None
    previous: str | None
    new_session: bool
    busy: bool
    closed_t: float | None
    sent_between: list[tuple[int, str]] = field(default_factory=list)  # zmq (seq, msg_id) while disconnected
    request: tuple[int, str, float] | None = None  # request_states (seq, msg_id, t)
    answer: tuple[int, float, int] | None = None  # update_states (seq, t, number of states)
    models: int = 0  # widget models open on the kernel at the request


@rule
class ReconnectState(BothTapsRule):
    id = "WS602"
    name = "reconnect-state"
    severity = Severity.WARNING
    title = "A browser reconnect lost messages or did not get the widget state back in time"
    description = (
        "On a websocket reconnect (page reload, network drop) the server replays buffered messages only to the "
        "same client `session_id`; a new `session_id` (a reload) discards the buffer. Reported when a reconnect "
        "with a new `session_id` happened while the kernel was busy (the kernel messages sent in between, seen "
        "on the ZMQ tap and never on the websocket, are counted), and when the front-end's `request_states` on "
        "the `jupyter.widget.control` comm was not answered by an `update_states` within 4000 ms or the answer "
        "missed widget models the kernel had open (the front-end then falls back to per-model `request_state`, "
        "or shows \"Loading widget...\"). A reconnect that got its state back in time is an info line."
    )
    source = ("bug-patterns B8 (ipywidgets#3633, #1316); protocol-notes §3.7, §4.4; §6 invariant 27 "
              "(`manager-base.ts:49-52,382-448`, jupyter_server `kernelmanager.py:360-452`)")
    messages = ("*",)
    events = ("ws_connected", "ws_closed")

    def __init__(self) -> None:
        self.open = 0
        self.closed_t: float | None = None
        self.busy: set[str] = set()  # parents of status busy without idle (zmq)
        self.widgets: set[str] = set()  # open jupyter.widget comms (zmq)
        self.control: set[str] = set()  # control comm ids (ws)
        self.reconnects: list[_Reconnect] = []
        self.disconnected_sent: list[tuple[int, str]] = []
        self.ws_ids: set[str] = set()
        self.browser_ids: set[str] = set()  # msg_ids the browser sent
        self.requests: dict[str, _Reconnect] = {}

    def on_event(self, rec: Any, ctx: Context) -> None:
        d = rec.data
        if rec.event == "ws_closed":
            self.open = max(0, self.open - 1)
            if self.open == 0:
                self.closed_t = rec.t
                self.disconnected_sent = []
        elif rec.event == "ws_connected":
            self.open += 1
            if d.get("reconnect"):
                r = _Reconnect(rec.seq, rec.t, d.get("session_id"), d.get("previous_session_id"),
                               not d.get("same_session", False), bool(self.busy), self.closed_t,
                               list(self.disconnected_sent))
                self.reconnects.append(r)
            self.disconnected_sent = []

    def on_message(self, rec: Any, ctx: Context) -> None:
        msg = rec.msg
        mtype = msg.header.get("msg_type") or ""
        mid = msg.header.get("msg_id")
        if rec.tap == "zmq":
            if rec.direction is TO_FRONTEND and rec.channel is Channel.IOPUB:
                if mtype == "status":
                    state = msg.content.get("execution_state") if isinstance(msg.content, dict) else None
                    pid = parent_id(rec) or ""
                    if state == "busy" and pid in self.browser_ids:
                        self.busy.add(pid)
                    elif state == "idle":
                        self.busy.discard(pid)
                elif mtype == "comm_open" and content(rec).get("target_name") == WIDGET_TARGET:
                    self.widgets.add(comm_id(rec) or "")
                if self.open == 0 and mid and mtype not in NOT_FORWARDED:
                    # status replies to the server's own connect-time nudges were never for the browser
                    if mtype != "status" or (parent_id(rec) or "") in self.browser_ids:
                        self.disconnected_sent.append((rec.seq, mid))
            if mtype == "comm_open" and rec.direction is TO_KERNEL and content(rec).get("target_name") == WIDGET_TARGET:
                self.widgets.add(comm_id(rec) or "")
            if mtype == "comm_close":
                self.widgets.discard(comm_id(rec) or "")
            return
        if rec.tap != "ws":
            return
        if mid:
            self.ws_ids.add(mid)
            if rec.direction is TO_KERNEL:
                self.browser_ids.add(mid)
        if mtype == "comm_open" and rec.direction is TO_KERNEL and content(rec).get("target_name") == CONTROL_TARGET:
            self.control.add(comm_id(rec) or "")
        elif mtype == "comm_msg":
            method = data(rec).get("method")
            if method == "request_states" and rec.direction is TO_KERNEL and self.reconnects:
                r = self.reconnects[-1]
                if r.request is None and mid:
                    r.request = (rec.seq, mid, rec.t)
                    r.models = len(self.widgets)
                    self.requests[mid] = r
            elif method == "update_states" and rec.direction is TO_FRONTEND:
                r = self.requests.get(parent_id(rec) or "")
                if r is not None and r.answer is None:
                    states = data(rec).get("states")
                    r.answer = (rec.seq, rec.t, len(states) if isinstance(states, dict) else 0)

    def finish(self, ctx: Context) -> None:
        for r in self.reconnects:
            lost = [s for s, mid in r.sent_between if mid not in self.ws_ids]
            problems = []
            if r.new_session and r.busy:
                problems.append(
                    f"reconnect with a new session_id while the kernel was busy: {len(lost)} kernel message(s) "
                    f"sent while disconnected never reached the browser"
                )
            elif lost:
                problems.append(f"{len(lost)} kernel message(s) sent while disconnected never reached the browser")
            state = ""
            if r.request is not None:
                req_seq, _mid, req_t = r.request
                if r.answer is None:
                    if r.models:  # with no widget on the kernel there is nothing to restore (and ipywidgets
                        # may not be imported yet: the kernel then closes the control comm, bug-patterns B14)
                        problems.append(f"request_states (seq {req_seq}) was never answered "
                                        f"({r.models} model(s) open on the kernel)")
                    else:
                        state = "no widget models to restore"
                else:
                    ans_seq, ans_t, n = r.answer
                    ms = (ans_t - req_t) * 1000
                    state = f"request_states answered in {ms:.0f} ms with {n} of {r.models} model(s)"
                    if ans_t - req_t > REQUEST_STATES_TIMEOUT:
                        problems.append(f"{state}: later than the front-end's 4000 ms timeout")
                    elif n < r.models:
                        problems.append(f"{state}: the answer misses models the kernel had open")
            elif self.widgets:
                state = "no request_states after it"
            related = tuple(lost[:5]) + ((r.request[0],) if r.request else ()) + ((r.answer[0],) if r.answer else ())
            head = f"websocket reconnect (session {str(r.session_id)[:8]}, {'new' if r.new_session else 'same'} session_id"
            head += f", kernel {'busy' if r.busy else 'idle'})"
            if problems:
                ctx.report(self, r.seq, f"{head}: " + "; ".join(problems), t=r.t, related=related)
            else:
                ctx.report(self, r.seq, f"{head}: {state or 'no widget state to re-fetch'}", t=r.t, related=related,
                           severity=Severity.INFO)

