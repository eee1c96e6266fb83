"""WS1xx: the Jupyter wire protocol (frames, headers, ids, channels, replies)."""

from __future__ import annotations

from itertools import islice
from typing import Any

from ...message import Channel, Direction
from ..base import Rule, Severity, rule
from ..context import EMPTY, Context

TO_KERNEL = Direction.TO_KERNEL
SHELL = Channel.SHELL
IOPUB = Channel.IOPUB


class WireRule(Rule):
    category = "wire"


@rule
class UnparsedFrames(WireRule):
    id = "WS101"
    name = "malformed-frames"
    severity = Severity.ERROR
    title = "Frames that do not decode as a Jupyter message"
    description = (
        "A multipart ZMQ message must contain the `<IDS|MSG>` delimiter followed by at least five frames "
        "(signature, header, parent header, metadata, content), with buffers only after the content, and the "
        "four dicts must be JSON objects. The recorder forwards frames it cannot decode unchanged and logs them "
        "as unparsed records; jupyter_client's `Session.deserialize` rejects them (`DELIM not in msg_list`, "
        "`malformed message`), so the receiver drops the message."
    )
    source = "protocol-notes §1.2; §6 invariant 1 (`session.py:960-1001,1079-1081`)"
    unparsed = True

    def on_unparsed(self, rec: Any, ctx: Context) -> None:
        ctx.report(self, rec.seq, f"{rec.frames} frame(s), {rec.size} bytes on {rec.channel.value} "
                   f"{rec.direction.arrow} did not decode: {rec.reason}", rec=rec)


REQUIRED_HEADER = ("msg_id", "msg_type", "username", "session", "version", "date")


@rule
class HeaderFields(WireRule):
    id = "WS102"
    name = "header-fields"
    severity = Severity.ERROR
    title = "Message header lacks a required string field"
    description = (
        "Every header must carry string `msg_id`, `msg_type`, `username`, `session` and `version`, and `date` "
        "(mandatory since protocol 5.1). JupyterLab validates the first five and throws \"Kernel message "
        "validation error\" for a message that lacks one; a missing `session` also breaks restart detection."
    )
    source = "protocol-notes §1.3; §6 invariant 4 (`messaging.rst:102-168`, `validate.ts:14`)"
    messages = ("*",)
    skip_healthy = "wire"

    def on_message(self, rec: Any, ctx: Context) -> None:
        header = rec.msg.header
        try:  # every message passes: the six fields, unrolled (a missing one raises KeyError)
            if (header.__class__ is dict and header["msg_id"].__class__ is str
                    and header["msg_type"].__class__ is str and header["username"].__class__ is str
                    and header["session"].__class__ is str and header["version"].__class__ is str
                    and header["date"].__class__ is str):
                return
        except KeyError:
            pass
        if header.__class__ is not dict:
            ctx.report(self, rec.seq, "header is not a JSON object", rec=rec)
            return
        missing = [k for k in REQUIRED_HEADER if k not in header]
        wrong = [f"{k} is {type(header[k]).__name__}" for k in REQUIRED_HEADER
                 if k in header and not isinstance(header[k], str)]
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + wrong
        ctx.report(self, rec.seq, f"header of {header.get('msg_type') or '?'}: {'; '.join(parts)}", rec=rec)


DUP_WINDOW = 1 << 16


@rule
class DuplicateMsgId(WireRule):
    id = "WS103"
    name = "duplicate-msg-id"
    severity = Severity.ERROR
    title = "A msg_id is reused"
    description = (
        "`header.msg_id` must be unique per message. Replies, `status` messages and widget echoes find their "
        "request through `parent_header.msg_id`, so a reused id makes a front-end attach replies to the wrong "
        "request (and a byte-identical resend is rejected by the receiver as a duplicate signature). Checked over "
        "the last 65,536 messages (the window jupyter_client keeps for signatures) of the kernel, and of each "
        "client connection (routing identity): jupyter_client's KernelManager numbers the `shutdown_request` "
        "it sends through its own control socket from 0 again, reusing an id its client already used."
    )
    source = "protocol-notes §1.3, §1.4; §6 invariants 3 and 5 (`messaging.rst:118`, `session.py:1070-1071`)"
    messages = ("*",)

    def __init__(self) -> None:
        # [msg_id -> seq, size at which it rotates], the kernel's messages per tap, front-end messages per
        # tap and client connection (replies are routed per connection, and jupyter_client's KernelManager
        # numbers the shutdown_request it sends on its own socket from 0 again). One dict holds the previous
        # window of DUP_WINDOW ids then the current one, in insertion order: when the current window is full
        # it becomes the previous one and the older ids are dropped.
        self._kernel: dict[str, list[Any]] = {}
        self._clients: dict[tuple[str, Any], list[Any]] = {}

    def on_message(self, rec: Any, ctx: Context) -> None:
        mid = ctx.msg_id
        if mid.__class__ is not str or not mid:
            return
        if rec.direction is TO_KERNEL:
            key: Any = (rec.tap, rec.peer)
            windows: dict[Any, list[Any]] = self._clients
        else:
            key = rec.tap
            windows = self._kernel
        win = windows.get(key)
        if win is None:
            win = windows[key] = [{}, DUP_WINDOW]
        ids = win[0]
        n = len(ids)
        first = ids.setdefault(mid, rec.seq)  # one lookup: a new id is added, a known one keeps its seq
        if len(ids) == n:
            ctx.report(self, rec.seq, f"msg_id {mid} already used by the message at seq {first}", rec=rec,
                       related=(first,))
            return
        if len(ids) >= win[1]:
            if len(ids) > DUP_WINDOW:
                win[0] = dict(islice(ids.items(), len(ids) - DUP_WINDOW, None))
            win[1] = 2 * DUP_WINDOW


@rule
class CommChannel(WireRule):
    id = "WS104"
    name = "comm-wrong-channel"
    severity = Severity.ERROR
    title = "Comm message on the wrong channel"
    description = (
        "Front-end `comm_open`/`comm_msg`/`comm_close` go to the kernel on the shell channel only; kernel comm "
        "messages come back on IOPub only. ipykernel registers the comm handlers for shell alone: a comm message "
        "on control or stdin is logged as \"Unknown message type\" and ignored, so the widget never changes."
    )
    source = "protocol-notes §2.1; §6 invariant 9 (`messaging.rst:1884-1886`, `ipkernel.py:159-165`)"
    messages = ("comm_open", "comm_close", "comm_msg:*")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        want = SHELL if rec.direction is TO_KERNEL else IOPUB
        if rec.channel is not want:
            who = "front-end" if rec.direction is TO_KERNEL else "kernel"
            ctx.report(self, rec.seq, f"{who} {rec.msg.msg_type} on {rec.channel.value}, expected {want.value}",
                       rec=rec, comm_id=_cid(rec))


def _cid(rec: Any) -> str | None:
    c = rec.msg.content
    cid = c.get("comm_id") if c.__class__ is dict else None
    return cid if cid.__class__ is str else None


@rule
class CommContent(WireRule):
    id = "WS105"
    name = "comm-content"
    severity = Severity.ERROR
    title = "Comm message content is malformed"
    description = (
        "`comm_open` content needs a string `comm_id`, a string `target_name` and a `data` object (\"always a "
        "dict\"); `comm_msg` needs `comm_id` and a `data` object; `comm_close` needs `comm_id` (and `data`, if "
        "present, is an object). JupyterLab's IOPub validation throws on anything else, and ipykernel's handlers "
        "raise on a missing key."
    )
    source = "protocol-notes §2.1; §6 invariant 10 (`messaging.rst:1888-1938`, `validate.ts:37-39`)"
    messages = ("comm_open", "comm_close", "comm_msg:*")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        t = ctx.msg_type
        if ctx.cid and ctx.data is not EMPTY and (t != "comm_open" or ctx.content.get("target_name").__class__ is str):
            return  # well formed (the common case)
        c = rec.msg.content
        if c.__class__ is not dict:
            ctx.report(self, rec.seq, f"{t} content is not an object", rec=rec)
            return
        problems = []
        cid = c.get("comm_id")
        if cid.__class__ is not str or not cid:
            problems.append("comm_id is missing or not a string")
        if t == "comm_open" and c.get("target_name").__class__ is not str:
            problems.append("target_name is missing or not a string")
        if "data" in c or t != "comm_close":
            if c.get("data").__class__ is not dict:
                problems.append("data is missing or not an object")
        if problems:
            ctx.report(self, rec.seq, f"{t}: {'; '.join(problems)}", rec=rec,
                       comm_id=cid if cid.__class__ is str else None)


REPLY_TYPES = (
    "execute_reply", "inspect_reply", "complete_reply", "history_reply", "is_complete_reply", "comm_info_reply",
    "kernel_info_reply", "shutdown_reply", "interrupt_reply", "debug_reply", "connect_reply", "usage_reply",
    "create_subshell_reply", "delete_subshell_reply", "list_subshell_reply", "input_reply",
)


@rule
class ReplyParent(WireRule):
    id = "WS106"
    name = "reply-parent"
    severity = Severity.ERROR
    title = "Reply without its request as parent"
    description = (
        "`*_reply` messages MUST carry the request's header as `parent_header`, must answer a request of the "
        "matching type (`execute_request` → `execute_reply`) and travel on the request's channel (ipykernel also "
        "broadcasts `shutdown_reply` on IOPub). Clients match replies to requests by `parent_header.msg_id`: a "
        "reply that names no request, or the wrong one, leaves the client waiting forever, and so does a reply "
        "to a msg_id that several requests of different kinds used. One reuse is known server behaviour and "
        "reported as info, once per msg_id: jupyter_server numbers the messages of each kernel websocket "
        "connection `<session_id>_<pid>_<n>` from 0 and every connection nudges the kernel with "
        "`kernel_info_request`s on fresh shell and control sockets, so two connections with one `session_id` "
        "(a reconnect, the legacy-framing fallback) send kernel_info_requests with the same ids, one on shell "
        "and one on control; each reply goes back to its own socket and they are interchangeable."
    )
    source = ("protocol-notes §1.3, §1.5, §4.4; §6 invariant 7 (`messaging.rst:170-189`); jupyter_server 2.x "
              "`connection/channels.py:158-296` (nudge), `kernels/websocket.py:52-53` (session = the client's "
              "session_id); jupyter_client `session.py:610-613` (msg_id numbering)")
    messages = REPLY_TYPES

    def __init__(self) -> None:
        self._told: set[str] = set()  # reused kernel_info msg_ids already reported

    def on_message(self, rec: Any, ctx: Context) -> None:
        t = ctx.msg_type
        if not ctx.parent:
            ctx.report(self, rec.seq, f"{t} has an empty parent_header", rec=rec)
            return
        if t == "input_reply":
            return
        req = ctx.parent_req
        if req is None:
            return  # a request from before the recording, or one kept no longer
        want = t[: -len("_reply")] + "_request"
        wrong_type = req.msg_type != want
        wrong_channel = not wrong_type and not _fits_channel(rec, t, req)
        if ctx.reused:
            shared = ctx.reused.get(ctx.parent)
            if shared is not None:
                self._reused(rec, ctx, t, want, shared, wrong_type or wrong_channel)
                return
        if wrong_type:
            ctx.report(self, rec.seq, f"{t} answers a {req.msg_type} (seq {req.seq})", rec=rec, related=(req.seq,))
        elif wrong_channel:
            ctx.report(self, rec.seq, f"{t} on {rec.channel.value}, its request (seq {req.seq}) came on "
                       f"{req.channel.value}", rec=rec, related=(req.seq,))

    def _reused(self, rec: Any, ctx: Context, t: str, want: str, shared: list[Any], mismatch: bool) -> None:
        """The reply's parent msg_id was used by several requests (`shared`, oldest first)."""
        fits = [r for r in shared if r.msg_type == want and _fits_channel(rec, t, r)]
        if rec.peer is not None and len(fits) > 1:  # ZMQ routes a reply to its request's socket
            fits = [r for r in fits if r.peer == rec.peer] or fits
        pid = ctx.parent
        used = ", ".join(f"seq {r.seq} {r.msg_type} on {r.channel.value}" for r in shared[:4])
        related = tuple(r.seq for r in shared[:4])
        if fits and all(r.msg_type == "kernel_info_request" for r in shared):
            if pid not in self._told:
                self._told.add(pid)
                ctx.report(self, rec.seq, f"{t} to msg_id {pid}, which {len(shared)} kernel_info_requests used "
                           f"({used}), as jupyter_server's connect-time nudges do when two connections share "
                           "a session_id: known server behaviour, the replies are interchangeable",
                           rec=rec, related=related, severity=Severity.INFO)
            return
        if not mismatch:
            return  # it answers the latest request of that id (WS103 reports a reuse within one client)
        if fits:
            ctx.report(self, rec.seq, f"{t} to msg_id {pid}, which {len(shared)} requests used ({used}): it fits "
                       f"seq {fits[-1].seq}, but a client cannot tell which request it answers", rec=rec,
                       related=related)
        else:
            ctx.report(self, rec.seq, f"{t} to msg_id {pid}, which {len(shared)} requests used ({used}), none a "
                       f"{want} on {rec.channel.value}", rec=rec, related=related)


def _fits_channel(rec: Any, t: str, req: Any) -> bool:
    return rec.channel is req.channel or (t == "shutdown_reply" and rec.channel is IOPUB)


KERNEL_STATES = frozenset({"busy", "idle", "starting"})


@rule
class StatusState(WireRule):
    id = "WS107"
    name = "status-state"
    severity = Severity.WARNING
    title = "Unknown kernel execution_state"
    description = (
        "A kernel's `status.execution_state` is `busy`, `idle` or `starting`. `restarting` and `dead` are "
        "synthesized by jupyter_server on the websocket, never sent by a kernel over ZMQ; any other value is "
        "rejected by JupyterLab's message validation."
    )
    source = "protocol-notes §1.5; §6 invariant 8 (`messaging.rst:1734-1741`, `channels.py:838-862`)"
    messages = ("status@F",)
    skip_healthy = "wire"

    def on_message(self, rec: Any, ctx: Context) -> None:
        state = ctx.content.get("execution_state")
        if state in KERNEL_STATES:
            return
        if rec.tap == "ws" and state in ("restarting", "dead"):
            return
        ctx.report(self, rec.seq, f"execution_state {state!r} on the {rec.tap} tap", rec=rec)
