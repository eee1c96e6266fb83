"""WS3xx: the Jupyter widget protocol (versions, state, methods, buffers,
references, views, request_state(s), echo_update)."""

from __future__ import annotations

from typing import Any

from ...message import CONTROL_TARGET, VIEW_MIMETYPE, WIDGET_TARGET, Direction
from ..base import Rule, Severity, rule
from ..context import IDENTITY_KEYS, MISSING, Context, Request
from ._util import comm_id, content, data, iter_refs, label, major, msg_id, parent_id, short, version_tuple

TO_KERNEL = Direction.TO_KERNEL
TO_FRONTEND = Direction.TO_FRONTEND
IDENTITY_SET = frozenset(IDENTITY_KEYS)
MODEL_KEYS = ("_model_name", "_model_module", "_model_module_version")
VIEW_KEYS = ("_view_name", "_view_module", "_view_module_version")
STATE_METHODS = ("update", "echo_update")


class WidgetRule(Rule):
    category = "widget protocol"


def _target(rec: Any, ctx: Context) -> str | None:
    """The target of the comm a comm message is on (comm_open: its own target_name)."""
    c = rec.msg.content
    if rec.msg.header.get("msg_type") == "comm_open":
        t = c.get("target_name") if c.__class__ is dict else None
        return t if isinstance(t, str) else None
    comm = ctx.comms.get(comm_id(rec) or "")
    return comm.target if comm is not None else None


@rule
class ProtocolVersion(WidgetRule):
    id = "WS301"
    name = "protocol-version"
    severity = Severity.ERROR
    title = "Widget comm_open with the wrong protocol major version"
    description = (
        "A `comm_open` to `jupyter.widget` must carry `metadata.version` with major `2` (widget protocol 2.x: "
        "ipywidgets 7 and 8); one to `jupyter.widget.control` major `1`. Only the major is negotiated: the kernel "
        "raises \"Incompatible widget protocol versions\" and closes the comm, the JS manager refuses the model "
        "(\"Wrong widget protocol version\")."
    )
    source = "protocol-notes §3.1; §6 invariant 17 (`widget.py:367-378,412-417`, `manager-base.ts:238-247`)"
    messages = ("comm_open",)

    def on_message(self, rec: Any, ctx: Context) -> None:
        target = content(rec).get("target_name")
        if target == WIDGET_TARGET:
            want = "2"
        elif target == CONTROL_TARGET:
            want = "1"
        else:
            return
        meta = rec.msg.metadata
        version = meta.get("version") if isinstance(meta, dict) else None
        if major(version) != want:
            ctx.report(self, rec.seq, f"{target} comm_open with metadata.version {version!r}; protocol major "
                       f"{want} expected", rec=rec, comm_id=comm_id(rec))


@rule
class OpenKeys(WidgetRule):
    id = "WS302"
    name = "open-state-keys"
    severity = Severity.ERROR
    title = "Widget comm_open without the required state keys"
    description = (
        "`comm_open` data on `jupyter.widget` is `{state: object, buffer_paths: list}`, and `state` holds "
        "`_model_name`, `_model_module` and `_model_module_version` (the front-end loads the model class from "
        "them). A front-end-opened widget also needs `_view_name`, `_view_module` and `_view_module_version`: "
        "the kernel looks the class up with all six and closes the comm on a `KeyError`."
    )
    source = "protocol-notes §3.2, §3.3; §6 invariant 18 (`messages.md:248-266`, `widget.py:412-431`)"
    messages = ("comm_open",)

    def on_message(self, rec: Any, ctx: Context) -> None:
        if content(rec).get("target_name") != WIDGET_TARGET:
            return
        d = ctx.data
        problems = []
        state = d.get("state")
        if not isinstance(state, dict):
            problems.append("data.state is missing or not an object")
            state = {}
        if "buffer_paths" in d and not isinstance(d["buffer_paths"], list):
            problems.append("data.buffer_paths is not a list")
        keys = MODEL_KEYS + (VIEW_KEYS if rec.direction is TO_KERNEL else ())
        missing = [k for k in keys if k not in state]
        wrong = [k for k in MODEL_KEYS if k in state and not isinstance(state[k], str)]
        if missing:
            problems.append(f"state lacks {', '.join(missing)}")
        if wrong:
            problems.append(f"{', '.join(wrong)} not a string")
        if problems:
            ctx.report(self, rec.seq, "; ".join(problems), rec=rec, comm_id=comm_id(rec))


def _states_in(rec: Any, method: str | None) -> list[tuple[str | None, dict[str, Any]]]:
    """(model id, state) pairs a comm message carries (update_states: one per entry)."""
    d = data(rec)
    if method == "update_states":
        states = d.get("states")
        out = []
        if isinstance(states, dict):
            for mid, entry in states.items():
                if isinstance(entry, dict) and isinstance(entry.get("state"), dict):
                    out.append((mid, entry["state"]))
        return out
    state = d.get("state")
    return [(comm_id(rec), state)] if state.__class__ is dict else []


@rule
class IdentityChanged(WidgetRule):
    id = "WS303"
    name = "identity-changed"
    severity = Severity.ERROR
    title = "A model's _model_*/_view_* identity key changes after open"
    description = (
        "`_model_name`, `_model_module`, `_model_module_version`, `_view_name`, `_view_module` and "
        "`_view_module_version` are \"assumed immutable (set at initialization, and never changed)\"; the model "
        "ones are `read_only` traits in ipywidgets. A message that sends a different value makes the two sides "
        "disagree about what the model is; front-ends never reload the class."
    )
    source = "protocol-notes §3.2; §6 invariant 19 (`messages.md:227-238`, `widget.py:469-480`)"
    messages = ("comm_msg:update", "comm_msg:echo_update", "comm_msg:update_states")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        method = ctx.method
        if method != "update_states":
            state = ctx.state
            if state is None or IDENTITY_SET.isdisjoint(state):
                return
        for mid, state in _states_in(rec, method):
            comm = ctx.comms.get(mid or "")
            if comm is None or not comm.identity:
                continue
            ident = comm.identity
            changed = [f"{k} {short(ident[k])} → {short(state[k])}" for k in IDENTITY_KEYS
                       if k in state and k in ident and state[k] != ident[k]]
            if changed:
                ctx.report(self, rec.seq, f"identity changed: {'; '.join(changed)} (opened at seq {comm.open_seq})",
                           rec=rec, comm_id=mid, related=(comm.open_seq,))


WIDGET_METHODS = frozenset({"update", "echo_update", "request_state", "custom"})
V1_METHODS = frozenset({"backbone", "display"})
CONTROL_METHODS = frozenset({"request_states", "update_states"})


@rule
class UnknownMethod(WidgetRule):
    id = "WS304"
    name = "unknown-method"
    severity = Severity.ERROR
    title = "Widget comm_msg with an unknown method"
    description = (
        "`data.method` on a `jupyter.widget` comm is one of `update`, `echo_update`, `request_state`, `custom` "
        "(plus `backbone`/`display` on a protocol 1 comm); on `jupyter.widget.control` it is `request_states` or "
        "`update_states`. The kernel logs \"Unknown front-end to back-end widget msg\" (control: raises), the JS "
        "model ignores anything else: the message is lost."
    )
    source = "protocol-notes §3.4, §3.7; §6 invariant 20 (`widget.py:762-786`, `widget.ts:259-323`)"
    messages = ("comm_msg:*",)
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        method = ctx.method
        cid = ctx.cid
        comm = ctx.cur_comm if cid is not None else ctx.comms.get("")
        if comm is None:
            return
        if comm.target == WIDGET_TARGET:
            if method in WIDGET_METHODS or (method in V1_METHODS and major(comm.version) == "1"):
                return
        elif comm.target == CONTROL_TARGET:
            if method in CONTROL_METHODS:
                return
        else:
            return
        ctx.report(self, rec.seq, f"method {method!r} on a {comm.target} comm", rec=rec, comm_id=cid)


WRONG_WAY = {
    # method: the only direction it may travel
    "request_state": TO_KERNEL,
    "request_states": TO_KERNEL,
    "echo_update": TO_FRONTEND,
    "update_states": TO_FRONTEND,
}


@rule
class MethodDirection(WidgetRule):
    id = "WS305"
    name = "method-direction"
    severity = Severity.ERROR
    title = "Widget method sent the wrong way"
    description = (
        "`request_state` and `request_states` go from a front-end to the kernel only; `echo_update` and "
        "`update_states` from the kernel to front-ends only. JupyterLab ignores a `request_state` from the "
        "kernel, and the kernel rejects an `echo_update` (\"Unknown front-end to back-end widget msg\")."
    )
    source = "protocol-notes §3.4, §3.7; §6 invariant 20 (`messages.md`, `widget.py:762-786`)"
    messages = ("comm_msg:request_state@F", "comm_msg:request_states@F", "comm_msg:echo_update@K",
                "comm_msg:update_states@K")

    def on_message(self, rec: Any, ctx: Context) -> None:
        method = ctx.data.get("method")
        if rec.direction is not WRONG_WAY[method]:
            who = "front-end" if rec.direction is TO_KERNEL else "kernel"
            ctx.report(self, rec.seq, f"{who} sent {method}, which only travels "
                       f"{'to the kernel' if WRONG_WAY[method] is TO_KERNEL else 'to front-ends'}",
                       rec=rec, comm_id=comm_id(rec))


@rule
class MethodPayload(WidgetRule):
    id = "WS306"
    name = "method-payload"
    severity = Severity.ERROR
    title = "Widget method without its payload"
    description = (
        "`update` and `echo_update` must carry a `state` object, `custom` a `content` field, `update_states` a "
        "`states` object. The receiving model raises on a missing payload (\"Could not process update msg\") "
        "and the change is lost."
    )
    source = "protocol-notes §3.4, §3.7; §6 invariant 20 (`widget.py:762-786`, `widget.ts:259-323`)"
    messages = ("comm_msg:update", "comm_msg:echo_update", "comm_msg:custom", "comm_msg:update_states")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        d = ctx.data
        method = ctx.method
        if method == "custom":
            ok, what = "content" in d, "content"
        elif method == "update_states":
            ok, what = isinstance(d.get("states"), dict), "a states object"
        else:
            ok, what = ctx.state is not None, "a state object"
        if not ok:
            ctx.report(self, rec.seq, f"{method} without {what}", rec=rec, comm_id=comm_id(rec))


@rule
class BufferCount(WidgetRule):
    id = "WS307"
    name = "buffer-count"
    severity = Severity.ERROR
    title = "buffer_paths and buffers differ in number"
    description = (
        "On `comm_open`, `update`, `echo_update` and `update_states`, `buffer_paths[i]` says where `buffers[i]` "
        "goes, so the counts must be equal. Python's `_put_buffers` silently drops the extras (a value goes "
        "missing), the JS `put_buffers` raises a TypeError on a missing buffer. `custom` messages carry buffers "
        "without `buffer_paths` and are not checked."
    )
    source = "protocol-notes §3.5; §6 invariants 21 and 23 (`messages.md:256-266`, `widget.py:75-85`, `utils.ts:100-128`)"
    messages = ("comm_open", "comm_msg:update", "comm_msg:echo_update", "comm_msg:update_states")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        buffers = rec.msg.buffers
        d = ctx.data
        paths = d.get("buffer_paths")
        if not buffers and not paths:
            return
        if rec.msg.header.get("msg_type") == "comm_open" and content(rec).get("target_name") != WIDGET_TARGET:
            return
        n = len(paths) if isinstance(paths, list) else 0
        if n != len(buffers):
            ctx.report(self, rec.seq, f"{n} buffer path(s) but {len(buffers)} buffer(s)", rec=rec,
                       comm_id=comm_id(rec))


def check_path(state: Any, path: Any) -> str | None:
    """Why a buffer path does not resolve in a JSON state (None if it does)."""
    if not isinstance(path, list) or not path:
        return f"path {path!r} is not a non-empty list"
    for part in path:
        if not (isinstance(part, str) or (isinstance(part, int) and not isinstance(part, bool))):
            return f"path {path!r} has a {type(part).__name__} element"
    obj = state
    for i, key in enumerate(path[:-1]):
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return f"path {path!r}: {path[: i + 1]!r} does not exist"
        if not isinstance(obj, (dict, list)):
            return f"path {path!r}: {path[: i + 1]!r} is not an object or a list"
    last = path[-1]
    if isinstance(obj, dict):
        if not isinstance(last, str):
            return f"path {path!r} indexes an object with {last!r}"
        if last in obj:
            return f"path {path!r}: key {last!r} is still in the state (it must be removed)"
        return None
    if not isinstance(last, int) or not -len(obj) <= last < len(obj):
        return f"path {path!r}: index {last!r} is outside the list"
    if obj[last] is not None:
        return f"path {path!r}: list slot holds {short(obj[last], 20)}, not null"
    return None


@rule
class BufferPaths(WidgetRule):
    id = "WS308"
    name = "buffer-paths"
    severity = Severity.ERROR
    title = "A buffer path does not resolve in the state"
    description = (
        "Each buffer path is a list of string keys and integer indices; every prefix must exist in `state`; a "
        "final string key must be absent from `state` (the sender removed the binary value) and a final index "
        "must point at a `null` list slot. Otherwise the receiver's `put_buffers` raises (KeyError/IndexError) or "
        "overwrites a JSON value. `update_states` paths are `[model_id, \"state\", ...]` (the form without "
        "`\"state\"` from messages.md is accepted too)."
    )
    source = "protocol-notes §3.5, §3.7, §9 item 1; §6 invariant 22 (`messages.md:262-266`); bug-patterns B10"
    messages = ("comm_open", "comm_msg:update", "comm_msg:echo_update", "comm_msg:update_states")
    skip_healthy = "comm"

    def on_message(self, rec: Any, ctx: Context) -> None:
        d = ctx.data
        paths = d.get("buffer_paths")
        if not paths or not isinstance(paths, list):
            return
        if d.get("method") == "update_states":
            root = d.get("states")
            fixed = []
            for p in paths:
                if (isinstance(p, list) and len(p) >= 2 and p[1] != "state" and isinstance(root, dict)
                        and isinstance(root.get(p[0]), dict)):
                    p = [p[0], "state", *p[1:]]
                fixed.append(p)
            paths = fixed
        else:
            root = d.get("state")
        if not isinstance(root, dict):
            return
        problems = [why for why in (check_path(root, p) for p in paths) if why]
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            ctx.report(self, rec.seq, problems[0] + more, rec=rec, comm_id=comm_id(rec))


def refs_in_state(state: dict[str, Any]) -> list[tuple[tuple, str]]:
    """IPY_MODEL_ references in a state; fast path for the common scalar updates."""
    out: list[tuple[tuple, str]] = []
    for key, value in state.items():
        cls = value.__class__
        if cls is str:
            if value[:10] == "IPY_MODEL_":
                out.append(((key,), value[10:]))
        elif cls is list or cls is dict:
            out.extend(iter_refs(value, (key,)))
    return out


@rule
class DanglingReference(WidgetRule):
    id = "WS309"
    name = "dangling-reference"
    severity = Severity.ERROR
    title = "IPY_MODEL_ reference to a model that is not open"
    description = (
        "Every `\"IPY_MODEL_<id>\"` in a state must name a model that is open on the receiving side when the "
        "message arrives: the front-end's `unpack_models` throws \"widget model not found\" and the widget fails "
        "to render (a container holding a closed child, a saved reference to a dead model). A reference to a "
        "model opened later inside the same request is reported as a warning (forward reference); one that is "
        "never opened, or was closed, as an error."
    )
    source = "protocol-notes §3.6; §6 invariant 24 (`widget.ts:40-62`, `manager-base.ts:217-223`); bug-patterns B2, B3"
    messages = ("comm_open", "comm_msg:update", "comm_msg:echo_update", "comm_msg:update_states")

    def __init__(self) -> None:
        self._later: dict[str, list[tuple[Any, str | None, str, tuple]]] = {}

    def on_message(self, rec: Any, ctx: Context) -> None:
        method = ctx.method
        if method == "update_states":
            pairs = _states_in(rec, method)
            inside = {mid for mid, _s in pairs}
        else:
            state = ctx.state
            if state is None:
                return
            for value in state.values():  # most states hold no reference at all
                c = value.__class__
                if c is str:
                    if value[:10] == "IPY_MODEL_":
                        break
                elif c is list or c is dict:
                    break
            else:
                return
            if ctx.msg_type == "comm_open" and ctx.content.get("target_name") != WIDGET_TARGET:
                return
            pairs = [(ctx.cid, state)]
            inside = set()
        to_kernel = rec.direction is TO_KERNEL
        for mid, state in pairs:
            refs = refs_in_state(state)
            for path, target in refs:
                if target in inside:
                    continue
                comm = ctx.comms.get(target)
                if comm is not None and comm.is_model:
                    closed = comm.k_closed if to_kernel else comm.f_closed
                    if closed is None:
                        continue
                    ctx.report(self, rec.seq, f"{label(path)} refers to {comm.model_name or 'model'} "
                               f"{target[:8]}, closed at seq {closed}", rec=rec, comm_id=mid, related=(closed,))
                    continue
                old = ctx.old_comms.get(target)
                if old is not None:
                    ctx.report(self, rec.seq, f"{label(path)} refers to {target[:8]} from before the kernel "
                               f"restart (epoch {old.epoch})", rec=rec, comm_id=mid)
                    continue
                parent = ctx.parent if not to_kernel else None
                if parent and parent in ctx.requests:
                    later = self._later.get(parent)
                    if later is None:
                        later = self._later[parent] = []
                        ctx.when_done(parent, self._done)
                    later.append((rec, mid, target, path))
                    continue
                ctx.report(self, rec.seq, f"{label(path)} refers to {target[:8]}, which was never opened",
                           rec=rec, comm_id=mid)

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        for rec, mid, target, path in self._later.pop(req.msg_id, ()):
            comm = ctx.comms.get(target)
            if comm is not None and comm.is_model and comm.open_seq > rec.seq:
                ctx.report(self, rec.seq, f"{label(path)} refers to {target[:8]} before it is opened (seq "
                           f"{comm.open_seq}, same request)", rec=rec, comm_id=mid, severity=Severity.WARNING,
                           related=(comm.open_seq,))
            else:
                ctx.report(self, rec.seq, f"{label(path)} refers to {target[:8]}, which was never opened",
                           rec=rec, comm_id=mid)


VIEW_TYPES = ("display_data", "execute_result", "update_display_data")


def _view(rec: Any) -> Any:
    c = rec.msg.content
    d = c.get("data") if c.__class__ is dict else None
    return d.get(VIEW_MIMETYPE, MISSING) if d.__class__ is dict else MISSING


@rule
class ViewUnknownModel(WidgetRule):
    id = "WS310"
    name = "view-unknown-model"
    severity = Severity.ERROR
    title = "Widget view of a model that is not open (\"model not found\")"
    description = (
        "A `display_data`/`execute_result`/`update_display_data` with `application/vnd.jupyter.widget-view+json` "
        "must name a model that is open at that moment (an empty `model_id` is a legal hidden view). Otherwise "
        "JupyterLab shows \"Error displaying widget: model not found\": the model was never opened in this "
        "kernel, or was already closed. Views of models from before a restart are WS207."
    )
    source = "protocol-notes §3.9; §6 invariant 25 (`widget.py:802-820`, `renderer.ts:41-70`); bug-patterns B2"
    messages = tuple(t + "@F" for t in VIEW_TYPES)

    def on_message(self, rec: Any, ctx: Context) -> None:
        view = _view(rec)
        if view is MISSING or not isinstance(view, dict):
            return
        mid = view.get("model_id")
        if not isinstance(mid, str) or mid == "":
            return
        comm = ctx.comms.get(mid)
        if comm is None:
            if mid in ctx.old_comms:
                return  # WS207
            ctx.report(self, rec.seq, f"view of model {mid[:8]}, which was never opened", rec=rec)
        elif not comm.is_model:
            ctx.report(self, rec.seq, f"view of comm {mid[:8]} on target {comm.target!r}, not a widget", rec=rec)
        elif comm.closed_by is not None:
            ctx.report(self, rec.seq, f"view of a model closed by the {comm.closed_by} at seq {comm.close_seq}",
                       rec=rec, comm_id=mid, related=(comm.close_seq or 0,))


@rule
class ViewSpec(WidgetRule):
    id = "WS311"
    name = "view-spec"
    severity = Severity.ERROR
    title = "Malformed widget view JSON, or a view of a model that has no view"
    description = (
        "The widget-view bundle must validate against ipywidgets' v2 view schema: an object with a string "
        "`model_id` and `version_major` 2. ipywidgets only displays models whose `_view_name` is not null "
        "(e.g. `LinkModel` has none); a view of such a model renders nothing."
    )
    source = "protocol-notes §3.9; §6 invariant 25 (`packages/schema/v2/view.schema.json`, `widget.py:802-820`)"
    messages = tuple(t + "@F" for t in VIEW_TYPES)

    def on_message(self, rec: Any, ctx: Context) -> None:
        view = _view(rec)
        if view is MISSING:
            return
        if not isinstance(view, dict):
            ctx.report(self, rec.seq, f"widget view is {type(view).__name__}, not an object", rec=rec)
            return
        problems = []
        mid = view.get("model_id")
        if not isinstance(mid, str):
            problems.append("model_id is missing or not a string")
        vm = view.get("version_major")
        if vm is not None and vm != 2:
            problems.append(f"version_major {vm!r}, expected 2")
        if isinstance(mid, str) and mid:
            comm = ctx.comms.get(mid)
            if comm is not None and comm.is_model and "_view_name" in comm.identity and comm.identity["_view_name"] is None:
                problems.append(f"{comm.model_name} has no view (_view_name is null)")
        if problems:
            ctx.report(self, rec.seq, "; ".join(problems), rec=rec, comm_id=mid if isinstance(mid, str) and mid else None)


@rule
class RequestStateReply(WidgetRule):
    id = "WS312"
    name = "request-state-reply"
    severity = Severity.ERROR
    title = "request_state not answered with the full state"
    description = (
        "A front-end's `request_state` must be answered, before the request's `status: idle`, by a `comm_msg` "
        "on the same comm with `method: update` (not `echo_update`), parented to the request, holding the "
        "entire state including `_model_name`, `_model_module` and `_model_module_version`. Front-ends use it "
        "to rebuild a model after a reload; without it the widget stays \"Loading\"."
    )
    source = "protocol-notes §3.4; §6 invariant 26 (`messages.md:319-332`, `manager-base.ts:519-531`, `widget.py:776-777`)"
    messages = ("comm_msg:request_state@K", "comm_msg:update@F", "comm_msg:echo_update@F")

    def __init__(self) -> None:
        self._asked: dict[str, list[Any]] = {}  # msg_id -> [comm_id, record, answered, echo seen]

    def on_message(self, rec: Any, ctx: Context) -> None:
        method = ctx.method
        if method == "request_state":
            if rec.direction is TO_KERNEL:
                mid = msg_id(rec)
                self._asked[mid] = [ctx.cid, rec, False, False]
                ctx.when_done(mid, self._done)
            return
        if not self._asked or rec.direction is not TO_FRONTEND:
            return
        ask = self._asked.get(ctx.parent or "")
        if ask is None or ctx.cid != ask[0]:
            return
        if method == "echo_update":
            ask[3] = True
            return
        state = ctx.data.get("state")
        missing = [k for k in MODEL_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            ctx.report(self, rec.seq, f"request_state reply lacks {', '.join(missing)}: not a full state", rec=rec,
                       comm_id=ask[0], related=(ask[1].seq,))
        ask[2] = True

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        ask = self._asked.pop(req.msg_id, None)
        if ask is None or ask[2] or idle is None:
            return
        comm = ctx.comms.get(ask[0] or "")
        if comm is None or comm.k_closed is not None:
            return  # the kernel no longer has it (other rules say why)
        how = "only an echo_update" if ask[3] else "no update"
        ctx.report(self, ask[1].seq, f"request_state got {how} before its idle (seq {idle.seq})", rec=ask[1],
                   comm_id=ask[0], related=(idle.seq,))


CONTROL_TIMEOUT = 4.0


@rule
class RequestStatesTimeout(WidgetRule):
    id = "WS313"
    name = "request-states-timeout"
    severity = Severity.WARNING
    title = "request_states not answered within 4 s"
    description = (
        "A front-end's `request_states` on the control comm must be answered by `update_states` within 4000 ms "
        "(`CONTROL_COMM_TIMEOUT`). Later than that the front-end has given up, closed the control comm and fallen "
        "back to `comm_info_request` plus one `request_state` per widget: slow reloads, \"Loading widget...\". "
        "It happens when the kernel is busy (comm messages queue behind a running cell). Not reported when the "
        "kernel rejected the control comm (closed it in answer to its `comm_open`, e.g. ipywidgets not imported "
        "yet, WS206): JupyterLab sends `request_states` without waiting for the open, the kernel drops it "
        "(\"No such comm\"), and the front-end takes the comm_close as the answer and falls back at once."
    )
    source = "protocol-notes §3.7; §6 invariant 27 (`manager-base.ts:49-52,382-448`); bug-patterns B8, B14 (ipywidgets#3525)"
    messages = ("comm_msg:request_states@K", "comm_msg:update_states@F")

    def __init__(self) -> None:
        self._asked: dict[str, list[Any]] = {}

    def on_message(self, rec: Any, ctx: Context) -> None:
        method = ctx.method
        if method == "request_states":
            if rec.direction is TO_KERNEL:
                mid = msg_id(rec)
                self._asked[mid] = [rec, False]
                ctx.when_done(mid, self._done)
            return
        ask = self._asked.get(parent_id(rec) or "")
        if ask is None:
            return
        ask[1] = True
        waited = rec.t - ask[0].t
        if waited > CONTROL_TIMEOUT:
            ctx.report(self, rec.seq, f"update_states came {waited:.1f} s after request_states (seq {ask[0].seq}); "
                       "the front-end gives up after 4 s", rec=rec, comm_id=comm_id(rec), related=(ask[0].seq,))

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        ask = self._asked.pop(req.msg_id, None)
        if ask is None or ask[1] or idle is None:
            return
        comm = ctx.comm(comm_id(ask[0]))
        if comm is not None and comm.rejected:
            return  # no answer can come: the front-end takes the kernel's comm_close as one (WS206)
        ctx.report(self, ask[0].seq, f"request_states got no update_states before its idle (seq {idle.seq})",
                   rec=ask[0], comm_id=comm_id(ask[0]), related=(idle.seq,))


@rule
class UpdateStatesShape(WidgetRule):
    id = "WS314"
    name = "update-states-shape"
    severity = Severity.WARNING
    title = "update_states entries or buffer paths malformed"
    description = (
        "Each value of `update_states.states` is `{model_name, model_module, model_module_version, state}` (not "
        "the bare state), the three names equal to `state._model_*`, and each buffer path starts with a key of "
        "`states` (ipywidgets writes `[model_id, \"state\", ...]`). The JS manager strips the first element to "
        "find the model: a malformed entry is skipped and that widget is not restored."
    )
    source = "protocol-notes §3.7, §9 item 1; §6 invariant 27 (`messages.md:374-417`, `widget.py:380-410`, ipywidgets#3685)"
    messages = ("comm_msg:update_states@F",)

    def on_message(self, rec: Any, ctx: Context) -> None:
        d = ctx.data
        states = d.get("states")
        if not isinstance(states, dict):
            return  # WS306
        problems = []
        for mid, entry in states.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("state"), dict):
                problems.append(f"{str(mid)[:8]}: not {{model_name, model_module, model_module_version, state}}")
                continue
            for outer, inner in (("model_name", "_model_name"), ("model_module", "_model_module"),
                                 ("model_module_version", "_model_module_version")):
                if not isinstance(entry.get(outer), str):
                    problems.append(f"{mid[:8]}: {outer} missing")
                elif inner in entry["state"] and entry["state"][inner] != entry[outer]:
                    problems.append(f"{mid[:8]}: {outer} {entry[outer]!r} ≠ state.{inner} {entry['state'][inner]!r}")
        for p in d.get("buffer_paths") or []:
            if not isinstance(p, list) or not p or p[0] not in states:
                problems.append(f"buffer path {short(p)} does not start with a model id of states")
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            ctx.report(self, rec.seq, "; ".join(problems[:3]) + more, rec=rec, comm_id=comm_id(rec))


class _EchoRule(WidgetRule):
    messages = ("comm_msg:echo_update@F",)


@rule
class EchoParent(_EchoRule):
    id = "WS315"
    name = "echo-parent"
    severity = Severity.ERROR
    title = "echo_update not parented to a front-end update on the same comm"
    description = (
        "An `echo_update` (protocol 2.1) echoes a front-end `update` (or a front-end `comm_open`) on the same "
        "comm: its `parent_header` is that message. The front-end uses the parent id to tell its own echo from an "
        "older one (`_expectedEchoMsgIds`); an echo with another parent is applied as a foreign change, or "
        "dropped, and the slider jumps. Echoes whose parent this tap never saw are not judged."
    )
    source = "protocol-notes §3.4; §6 invariant 28 (`messages.md:292-317`, `widget.py:630-655`, `widget.ts:259-323`)"

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.direction is not TO_FRONTEND:
            return
        cid = ctx.cid
        if not ctx.parent:
            ctx.report(self, rec.seq, "echo_update with an empty parent_header", rec=rec, comm_id=cid)
            return
        req = ctx.parent_req
        if req is None:
            return
        if req.msg_type == "comm_open" or (req.msg_type == "comm_msg" and req.method == "update"):
            if req.comm_id == cid:
                return
            ctx.report(self, rec.seq, f"echo_update's parent (seq {req.seq}) is on comm {str(req.comm_id)[:8]}, "
                       "not this one", rec=rec, comm_id=cid, related=(req.seq,))
            return
        what = req.label
        ctx.report(self, rec.seq, f"echo_update's parent is a {what} (seq {req.seq}), not a front-end update",
                   rec=rec, comm_id=cid, related=(req.seq,))


@rule
class EchoContent(WidgetRule):
    id = "WS316"
    name = "echo-content"
    severity = Severity.ERROR
    title = "echo_update does not echo what the front-end sent"
    description = (
        "An `echo_update` carries a subset of the keys of the front-end message it echoes, with exactly the "
        "values that message sent (binary values byte for byte), before the kernel's validation changed "
        "anything; a coerced value follows as a separate `update`. An echo with other keys or values overwrites "
        "the front-end's state with something it never chose."
    )
    source = "protocol-notes §3.4; §6 invariant 28 (`messages.md:292-317`, `widget.py:630-655`)"
    messages = ("comm_open@K", "comm_msg:update@K", "comm_msg:echo_update@F")

    def __init__(self) -> None:
        self._sent: dict[str, tuple[str | None, dict[str, Any], int]] = {}

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.direction is TO_KERNEL:
            if ctx.msg_type == "comm_open" and ctx.content.get("target_name") != WIDGET_TARGET:
                return
            state = ctx.state
            if state is None:
                return
            if ctx.data.get("buffer_paths") or rec.msg.buffers:
                state = Context._state(ctx.data, rec.msg.buffers)
            mid = ctx.msg_id or f"@{rec.seq}"
            self._sent[mid] = (ctx.cid, state, rec.seq)
            ctx.when_done(mid, self._done)
            return
        if ctx.method != "echo_update" or not self._sent:
            return
        sent = self._sent.get(ctx.parent or "")
        if sent is None or sent[0] != ctx.cid:
            return  # WS315 judges the parent
        echo = ctx.state
        if echo is None:
            return
        if ctx.data.get("buffer_paths") or rec.msg.buffers:
            echo = Context._state(ctx.data, rec.msg.buffers)
        fe = sent[1]
        for k, v in echo.items():  # the common case: every key sent, with the same value
            fv = fe.get(k, fe)
            if fv is fe:
                break
            c = fv.__class__
            if c is v.__class__ and (c is int or c is str):
                if fv != v:
                    break
            elif not _equal(fv, v):
                break
        else:
            return
        extra = [k for k in echo if k not in fe]
        differ = [f"{k}: sent {short(fe[k], 24)}, echoed {short(echo[k], 24)}" for k in echo
                  if k in fe and not _equal(fe[k], echo[k])]
        if extra or differ:
            parts = ([f"keys not sent: {', '.join(extra)}"] if extra else []) + differ
            ctx.report(self, rec.seq, f"echo of seq {sent[2]} differs: {'; '.join(parts)}", rec=rec,
                       comm_id=sent[0], related=(sent[2],))

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        self._sent.pop(req.msg_id, None)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (bytes, bytearray, memoryview)) or isinstance(b, (bytes, bytearray, memoryview)):
        try:
            return bytes(a) == bytes(b)
        except TypeError:
            return False
    if a.__class__ is bool or b.__class__ is bool:
        return a is b
    return bool(a == b)


@rule
class EchoOrder(WidgetRule):
    id = "WS317"
    name = "echo-order"
    severity = Severity.ERROR
    title = "echo_update after a corrective update for the same front-end message"
    description = (
        "When the kernel coerces a value a front-end sent (e.g. clamps 1000 to `max`), it sends the "
        "`echo_update` first and the corrective `update` after, both parented to the front-end message. The "
        "front-end applies `update`s unconditionally and filters echoes: an echo that comes after the correction "
        "puts the rejected value back on the screen."
    )
    source = "protocol-notes §3.4; §6 invariants 28 and 30 (`widget.py:630-655`, observed 1000 → 10)"
    messages = ("comm_msg:update@F", "comm_msg:echo_update@F")

    def __init__(self) -> None:
        self._updated: dict[str, dict[str, int]] = {}  # front-end update msg_id -> comm id -> seq of kernel update

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.direction is not TO_FRONTEND:
            return
        parent = ctx.parent
        if not parent:
            return
        req = ctx.parent_req
        if req is None or req.method != "update" or req.msg_type != "comm_msg":
            return
        cid = ctx.cid or ""
        if ctx.method == "update":
            if req.comm_id == cid:
                seen = self._updated.get(parent)
                if seen is None:
                    seen = self._updated[parent] = {}
                    ctx.when_done(parent, self._done)
                seen.setdefault(cid, rec.seq)
            return
        seen = self._updated.get(parent)
        first = seen.get(cid) if seen is not None else None
        if first is not None:
            ctx.report(self, rec.seq, f"echo_update of seq {req.seq} after the kernel's update at seq {first}",
                       rec=rec, comm_id=cid, related=(first, req.seq))

    def _done(self, ctx: Context, req: Request, idle: Any) -> None:
        self._updated.pop(req.msg_id, None)


@rule
class EchoProtocol(_EchoRule):
    id = "WS318"
    name = "echo-protocol"
    severity = Severity.WARNING
    title = "echo_update on a comm whose protocol is older than 2.1"
    description = (
        "`echo_update` exists since widget protocol 2.1.0 (ipywidgets 7.7/8). A kernel that announced 2.0.0 in "
        "the comm's `comm_open` metadata talks to front-ends that do not know the method; they ignore it and "
        "never see the kernel's acknowledgement."
    )
    source = "protocol-notes §3.1; §6 invariant 29 (`messages.md:294`)"

    def __init__(self) -> None:
        self._versions: dict[str, tuple[int, ...] | None] = {}  # version_tuple, once per version text

    def on_message(self, rec: Any, ctx: Context) -> None:
        cid = ctx.cid
        comm = ctx.cur_comm if cid is not None else ctx.comms.get("")
        if comm is None or comm.version is None:
            return
        try:
            v = self._versions[comm.version]
        except KeyError:
            v = self._versions[comm.version] = version_tuple(comm.version)
        if v is not None and v < (2, 1):
            ctx.report(self, rec.seq, f"echo_update on a comm opened with protocol {comm.version}", rec=rec,
                       comm_id=cid, related=(comm.open_seq,))


@rule
class NonFiniteJSON(WidgetRule):
    id = "WS319"
    name = "nan-infinity"
    severity = Severity.ERROR
    title = "NaN or Infinity in a message's JSON"
    description = (
        "JSON has no NaN or Infinity. jupyter_client packs messages with `allow_nan=False`, and JavaScript's "
        "`JSON.parse` rejects the tokens, so a browser drops the whole message (a float trait set to "
        "`float('nan')` never reaches the widget). The recorder keeps such messages and marks them "
        "`strict_json: false`."
    )
    source = "protocol-notes §1.3; §6 invariant 31 (`session.py:95-120`)"
    messages = ("*",)
    skip_healthy = "wire"

    def on_message(self, rec: Any, ctx: Context) -> None:
        if rec.strict_json:
            return
        ctx.report(self, rec.seq, f"{rec.msg.msg_type} holds NaN or Infinity (not valid JSON)", rec=rec,
                   comm_id=ctx.cid)
