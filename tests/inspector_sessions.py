"""Hand-built sessions for the sans-IO rule tests: a tiny builder of records."""

from __future__ import annotations

import itertools
from typing import Any, Iterable

from widgetspy.message import Channel, Direction, Message
from widgetspy.session.records import EventRecord, MessageRecord, UnparsedRecord

KERNEL_SESSION = "kernel-session-1"
FE_SESSION = "frontend-session-1"
WS_SESSION = "ws-session-1"  # the browser's websocket session_id
CONTROLS = "@jupyter-widgets/controls"
BASE = "@jupyter-widgets/base"


def identity(name: str, module: str = CONTROLS, version: str = "2.0.0", view: str | None = "auto") -> dict[str, Any]:
    return {"_model_name": name, "_model_module": module, "_model_module_version": version,
            "_view_name": name.replace("Model", "View") if view == "auto" else view, "_view_module": module,
            "_view_module_version": version}


def slider(**kw: Any) -> dict[str, Any]:
    return {**identity("IntSliderModel"), "value": 3, "max": 100, "min": 0, "orientation": "horizontal",
            "description": "", "_dom_classes": [], **kw}


def layout(**kw: Any) -> dict[str, Any]:
    return {**identity("LayoutModel", BASE, view="auto"), **kw}


class S:
    """Build a session: every call appends records and returns the main one."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self.t = 0.0
        self.taps = ["zmq"]  # the header's taps (`web()` adds "ws")

    # ------------------------------------------------------------ raw
    def msg(self, direction: Direction, channel: Channel, msg_type: str, content: dict[str, Any], *,
            parent: MessageRecord | None = None, metadata: dict[str, Any] | None = None, buffers: list[bytes] = (),
            msg_id: str | None = None, header: dict[str, Any] | None = None, peer: str | None = None,
            strict: bool = True, size: int = 0, dt: float = 0.001) -> MessageRecord:
        self.t += dt
        to_k = direction is Direction.TO_KERNEL
        hdr = {"msg_id": msg_id or f"{'f' if to_k else 'k'}{next(self._ids)}", "msg_type": msg_type,
               "username": "u", "session": FE_SESSION if to_k else KERNEL_SESSION, "date": "2026-01-01T00:00:00Z",
               "version": "5.4"}
        if header is not None:
            hdr = header
        m = Message(hdr, dict(parent.msg.header) if parent is not None else {}, metadata or {}, content,
                    list(buffers))
        rec = MessageRecord(next(self._seq), self.t, "zmq", direction, channel, m, 6, size or 100,
                            peer if peer is not None else ("client-a" if to_k else None), strict)
        self.records.append(rec)
        return rec

    def event(self, name: str, **data: Any) -> EventRecord:
        rec = EventRecord(next(self._seq), self.t, name, data)
        self.records.append(rec)
        return rec

    def ws_connect(self, session_id: str = WS_SESSION, previous: str | None = None) -> EventRecord:
        """A kernel websocket opens (a reconnect when `previous` names the last one's session_id)."""
        return self.event("ws_connected", session_id=session_id, reconnect=previous is not None,
                          previous_session_id=previous, same_session=previous == session_id, framing="v1")

    def ws_close(self, session_id: str = WS_SESSION, code: int = 1001) -> EventRecord:
        return self.event("ws_closed", session_id=session_id, code=code)

    def web(self, drop: Iterable[MessageRecord] = ()) -> None:
        """Make the session one `widgetspy record --web` writes: each message that passes while a
        websocket is open (between ws_connect and ws_close) also on the websocket tap, the browser's
        copy first for a message to the kernel and last for one from it; `drop`: kernel messages
        the server never forwarded. Renumbers seq."""
        dropped = {id(r) for r in drop}
        out: list[Any] = []
        session = None
        for rec in self.records:
            if isinstance(rec, EventRecord):
                if rec.event == "ws_connected":
                    session = rec.data["session_id"]
                elif rec.event == "ws_closed":
                    session = None
                out.append(rec)
                continue
            if session is None or not isinstance(rec, MessageRecord) or id(rec) in dropped:
                out.append(rec)
                continue
            to_k = rec.direction is Direction.TO_KERNEL
            ws = MessageRecord(0, rec.t + (-0.0005 if to_k else 0.0005), "ws", rec.direction, rec.channel, rec.msg,
                               1, rec.size, session, rec.strict_json)
            out.extend((ws, rec) if to_k else (rec, ws))
        for seq, rec in enumerate(out, 1):
            rec.seq = seq
        self.records = out
        self.taps = ["zmq", "ws"]

    def unparsed(self) -> UnparsedRecord:
        rec = UnparsedRecord(next(self._seq), self.t, "zmq", Direction.TO_KERNEL, Channel.SHELL, "no delimiter",
                             "deadbeef", 3, 12)
        self.records.append(rec)
        return rec

    # ------------------------------------------------------------ front-end -> kernel
    def send(self, msg_type: str, content: dict[str, Any], channel: Channel = Channel.SHELL, **kw: Any) -> MessageRecord:
        return self.msg(Direction.TO_KERNEL, channel, msg_type, content, **kw)

    def execute(self, code: str = "pass", **kw: Any) -> MessageRecord:
        return self.send("execute_request", {"code": code}, **kw)

    def fe_open(self, cid: str, state: dict[str, Any] | None, target: str = "jupyter.widget",
                version: str = "2.1.0", **kw: Any) -> MessageRecord:
        data = {"state": state, "buffer_paths": []} if state is not None else {}
        return self.send("comm_open", {"comm_id": cid, "target_name": target, "data": data},
                         metadata={"version": version}, **kw)

    def fe_msg(self, cid: str, data: dict[str, Any], **kw: Any) -> MessageRecord:
        return self.send("comm_msg", {"comm_id": cid, "data": data}, **kw)

    def fe_update(self, cid: str, state: dict[str, Any], paths: list | None = None, **kw: Any) -> MessageRecord:
        return self.fe_msg(cid, {"method": "update", "state": state, "buffer_paths": paths or []}, **kw)

    def fe_close(self, cid: str, **kw: Any) -> MessageRecord:
        return self.send("comm_close", {"comm_id": cid, "data": {}}, **kw)

    # ------------------------------------------------------------ kernel -> front-end
    def iopub(self, msg_type: str, content: dict[str, Any], parent: MessageRecord | None, **kw: Any) -> MessageRecord:
        return self.msg(Direction.TO_FRONTEND, Channel.IOPUB, msg_type, content, parent=parent, **kw)

    def reply(self, msg_type: str, content: dict[str, Any], parent: MessageRecord | None,
              channel: Channel = Channel.SHELL, **kw: Any) -> MessageRecord:
        return self.msg(Direction.TO_FRONTEND, channel, msg_type, content, parent=parent, **kw)

    def busy(self, parent: MessageRecord, **kw: Any) -> MessageRecord:
        return self.iopub("status", {"execution_state": "busy"}, parent, **kw)

    def idle(self, parent: MessageRecord, **kw: Any) -> MessageRecord:
        return self.iopub("status", {"execution_state": "idle"}, parent, **kw)

    def k_open(self, cid: str, state: dict[str, Any], parent: MessageRecord | None = None,
               target: str = "jupyter.widget", version: str = "2.1.0", paths: list | None = None,
               buffers: list[bytes] = (), **kw: Any) -> MessageRecord:
        return self.iopub("comm_open", {"comm_id": cid, "target_name": target, "target_module": None,
                                        "data": {"state": state, "buffer_paths": paths or []}},
                          parent, metadata={"version": version}, buffers=buffers, **kw)

    def k_msg(self, cid: str, data: dict[str, Any], parent: MessageRecord | None = None, **kw: Any) -> MessageRecord:
        return self.iopub("comm_msg", {"comm_id": cid, "data": data}, parent, **kw)

    def k_update(self, cid: str, state: dict[str, Any], parent: MessageRecord | None = None,
                 method: str = "update", **kw: Any) -> MessageRecord:
        return self.k_msg(cid, {"method": method, "state": state, "buffer_paths": []}, parent, **kw)

    def k_close(self, cid: str, parent: MessageRecord | None = None, **kw: Any) -> MessageRecord:
        return self.iopub("comm_close", {"comm_id": cid, "data": {}}, parent, **kw)

    def view(self, model_id: str, parent: MessageRecord | None = None, major: int = 2, **kw: Any) -> MessageRecord:
        return self.iopub("display_data", {"data": {"text/plain": "W()", "application/vnd.jupyter.widget-view+json": {
            "version_major": major, "version_minor": 0, "model_id": model_id}}, "metadata": {}, "transient": {}},
            parent, **kw)

    # ------------------------------------------------------------ stories
    def run(self, code: str = "pass", body=None) -> MessageRecord:
        """An execute_request with busy, the body's kernel messages, reply and idle."""
        req = self.execute(code)
        self.busy(req)
        if body is not None:
            body(req)
        self.reply("execute_reply", {"status": "ok"}, req)
        self.idle(req)
        return req

    def answered(self, req: MessageRecord, body=None) -> MessageRecord:
        """busy, the body's kernel messages, idle for a front-end message."""
        self.busy(req)
        if body is not None:
            body(req)
        self.idle(req)
        return req

    def control_rejected(self, gap: float | None = None) -> MessageRecord:
        """What JupyterLab 4 and Notebook 7 do on a page load when the kernel has not imported ipywidgets
        (tests/test_browser.py sessions, seq 31-50): open the `jupyter.widget.control` comm and send
        `request_states` at once; the kernel answers the open with "No such comm target registered" and
        comm_close, then drops `request_states` ("No such comm"). `gap`: None, request_states reaches the
        kernel before it handles the open (what the sessions show); else it arrives `gap` s after the
        close (the race the other way round). Returns request_states."""
        ctl = self.fe_open("ctl", None, target="jupyter.widget.control", version="1.0.0")
        ask = None
        if gap is None:
            ask = self.fe_msg("ctl", {"method": "request_states"})
        self.answered(ctl, lambda r: (
            self.iopub("stream", {"name": "stderr", "text": "No such comm target registered: jupyter.widget.control\n"}, r),
            self.k_close("ctl", r)))
        if ask is None:
            ask = self.fe_msg("ctl", {"method": "request_states"}, dt=gap)
        self.answered(ask, lambda r: self.iopub("stream", {"name": "stderr", "text": "No such comm: ctl\n"}, r))
        return ask

    def with_slider(self, cid: str = "s1", **kw: Any) -> MessageRecord:
        return self.run("s = W.IntSlider()", lambda r: (self.k_open("L1", layout(), r),
                                                         self.k_open(cid, slider(layout="IPY_MODEL_L1", **kw), r),
                                                         self.view(cid, r)))
