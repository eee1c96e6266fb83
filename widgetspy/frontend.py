"""A front-end driver: talk to a kernel the way a widget front-end does.

Used by `widgetspy demo`, the tests, and (later) replay and the pytest plugin.
It keeps the front-end's view of every widget model from the IOPub traffic it
receives, and sends what a browser sends: comm_msg `update`s with
`buffer_paths`, `request_state`, comm_opens, input replies.

Every wait is for a message (the kernel's `status: idle` for a request), never
a sleep.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from jupyter_client import BlockingKernelClient

from .buffers import put_buffers, remove_buffers
from .message import WIDGET_TARGET


class FrontendTimeout(TimeoutError):
    pass


@dataclass
class RequestResult:
    msg_id: str
    iopub: list[dict[str, Any]]  # every IOPub message parented to the request, up to its idle
    reply: dict[str, Any] | None = None  # the shell/control reply, for requests that have one
    stdin: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"].get("name") == "stdout")

    @property
    def error(self) -> dict[str, Any] | None:
        errs = self.of_type("error")
        return errs[0]["content"] if errs else None


class FrontendClient:
    def __init__(self, connection_file: str, timeout: float = 30.0, client: BlockingKernelClient | None = None):
        self.timeout = timeout
        self.kc = client or BlockingKernelClient(connection_file=connection_file)
        if client is None:
            self.kc.load_connection_file()
        if not self.kc.channels_running:
            self.kc.start_channels()
        self.kc.wait_for_ready(timeout=timeout)
        self.models: dict[str, dict[str, Any]] = {}  # comm_id -> state as this front-end sees it
        self.closed: set[str] = set()
        self.received: list[dict[str, Any]] = []  # every IOPub message, in arrival order
        self._pending_shell: dict[str, dict[str, Any]] = {}
        self.drain_iopub()

    # ------------------------------------------------------------ sending

    def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
    ) -> str:
        msg = self.kc.session.msg(msg_type, content, metadata=metadata or {})
        chan = getattr(self.kc, f"{channel}_channel")
        self.kc.session.send(chan.socket, msg, buffers=list(buffers) or None)
        return msg["header"]["msg_id"]

    def execute(self, code: str, *, timeout: float | None = None, stdin_reply: str | None = None) -> RequestResult:
        msg_id = self.kc.execute(code, allow_stdin=stdin_reply is not None)
        stdin = []
        if stdin_reply is not None:
            req = self.kc.get_stdin_msg(timeout=timeout or self.timeout)
            stdin.append(req)
            self.kc.input(stdin_reply)
        result = self.wait_idle(msg_id, timeout=timeout)
        result.reply = self.shell_reply(msg_id, timeout=timeout)
        result.stdin = stdin
        return result

    def comm_open(
        self, target: str, data: dict[str, Any], *, metadata: dict[str, Any] | None = None, comm_id: str | None = None
    ) -> tuple[str, RequestResult]:
        import uuid

        comm_id = comm_id or uuid.uuid4().hex
        msg_id = self.send("comm_open", {"comm_id": comm_id, "target_name": target, "data": data}, metadata=metadata)
        return comm_id, self.wait_idle(msg_id)

    def comm_msg(self, comm_id: str, data: dict[str, Any], buffers: Sequence[bytes] = ()) -> RequestResult:
        msg_id = self.send("comm_msg", {"comm_id": comm_id, "data": data}, buffers=buffers)
        return self.wait_idle(msg_id)

    def update(self, comm_id: str, state: dict[str, Any]) -> RequestResult:
        """Send a widget `update` (binary values become buffers) and wait for idle."""
        json_state, paths, buffers = remove_buffers(state)
        if comm_id in self.models:
            self.models[comm_id].update(state)
        return self.comm_msg(comm_id, {"method": "update", "state": json_state, "buffer_paths": paths}, buffers)

    def request_state(self, comm_id: str) -> dict[str, Any]:
        """Ask the kernel for a model's full state (what a front-end does on reload)."""
        result = self.comm_msg(comm_id, {"method": "request_state"})
        for m in result.of_type("comm_msg"):
            data = m["content"]["data"]
            if m["content"]["comm_id"] == comm_id and data.get("method") == "update":
                return put_buffers(data["state"], data.get("buffer_paths", []), m.get("buffers", []))
        raise FrontendTimeout(f"no state reply for {comm_id}")

    def comm_close(self, comm_id: str) -> RequestResult:
        self.closed.add(comm_id)
        self.models.pop(comm_id, None)
        msg_id = self.send("comm_close", {"comm_id": comm_id, "data": {}})
        return self.wait_idle(msg_id)

    def interrupt(self, msg_id: str, *, every: float = 1.0, timeout: float | None = None) -> RequestResult:
        """Interrupt the running request `msg_id` and wait for its idle; the
        interrupt is sent again every `every` seconds (one that comes before the
        kernel runs user code is ignored, as a person pressing the button knows)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            self.send("interrupt_request", {}, channel="control")
            try:
                result = self.wait_idle(msg_id, timeout=min(every, max(0.01, deadline - time.monotonic())))
            except FrontendTimeout:
                if time.monotonic() >= deadline:
                    raise
                continue
            result.reply = self.shell_reply(msg_id)
            return result

    def restart(self) -> None:
        """Restart the kernel and wait until the new one answers on shell and IOPub
        (output sent before IOPub is subscribed again would be lost)."""
        self.shutdown(restart=True)
        self.kc.wait_for_ready(timeout=self.timeout)
        self.sync_iopub()

    def sync_iopub(self) -> None:
        """Ask for kernel_info until its IOPub idle arrives: IOPub is connected."""
        deadline = time.monotonic() + self.timeout
        while True:
            msg_id = self.kc.kernel_info()
            try:
                self.wait_idle(msg_id, timeout=min(1.0, max(0.01, deadline - time.monotonic())))
                self.shell_reply(msg_id)
                return
            except FrontendTimeout:
                if time.monotonic() >= deadline:
                    raise

    def shutdown(self, restart: bool = False) -> dict[str, Any]:
        msg_id = self.send("shutdown_request", {"restart": restart}, channel="control")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self.kc.get_control_msg(timeout=max(0.01, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    # ------------------------------------------------------------ receiving

    def wait_idle(self, msg_id: str, *, timeout: float | None = None) -> RequestResult:
        """Read IOPub until `status: idle` for `msg_id`; return the messages parented to it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        mine: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrontendTimeout(f"no idle for {msg_id} within {timeout or self.timeout:.0f} s")
            try:
                msg = self.kc.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            self._apply(msg)
            if msg["parent_header"].get("msg_id") == msg_id:
                mine.append(msg)
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    return RequestResult(msg_id, mine)

    def shell_reply(self, msg_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        if msg_id in self._pending_shell:
            return self._pending_shell.pop(msg_id)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrontendTimeout(f"no reply for {msg_id}")
            reply = self.kc.get_shell_msg(timeout=remaining)
            parent = reply["parent_header"].get("msg_id")
            if parent == msg_id:
                return reply
            self._pending_shell[parent] = reply

    def drain_iopub(self) -> list[dict[str, Any]]:
        """Read every IOPub message already waiting; returns all received so far."""
        while True:
            try:
                self._apply(self.kc.get_iopub_msg(timeout=0))
            except queue.Empty:
                return self.received

    def _apply(self, msg: dict[str, Any]) -> None:
        """Keep the front-end's view of widget models, as a browser would."""
        self.received.append(msg)
        t = msg["msg_type"]
        content = msg["content"]
        if t == "comm_open" and content.get("target_name") == WIDGET_TARGET:
            data = content.get("data", {})
            self.models[content["comm_id"]] = put_buffers(
                dict(data.get("state", {})), data.get("buffer_paths", []), msg.get("buffers", [])
            )
        elif t == "comm_msg" and content.get("comm_id") in self.models:
            data = content.get("data", {})
            if data.get("method") in ("update", "echo_update"):
                state = put_buffers(dict(data.get("state", {})), data.get("buffer_paths", []), msg.get("buffers", []))
                self.models[content["comm_id"]].update(state)
        elif t == "comm_close":
            self.models.pop(content.get("comm_id"), None)
            self.closed.add(content.get("comm_id"))

    # ------------------------------------------------------------ queries

    def find(self, model_name: str) -> list[str]:
        """Open models of a class (e.g. "IntSliderModel"), oldest first."""
        return [cid for cid, s in self.models.items() if s.get("_model_name") == model_name]

    def close(self) -> None:
        self.kc.stop_channels()

    def __enter__(self) -> "FrontendClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
