"""A recorded widget session you drive from Python: a real kernel behind
`widgetspy record`, a front-end connected to it, and the recording read back as
records, a timeline and inspector findings.

It is what the pytest fixture `widgetspy` hands a test, and what
`recordings/make_recordings.py` uses to record the sample sessions.

    with WidgetSession("run.jsonl").start() as ws:
        ws.execute("import ipywidgets as W; s = W.IntSlider(); display(s)")
        slider = ws.widget("IntSlider")
        ws.update(slider, value=42)          # as a browser: comm_msg update, then wait for the echo and idle
        assert ws.execute("print(s.value)").stdout == "42\\n"
        assert ws.timeline.state(slider.id)["value"] == 42
        assert ws.errors == []               # inspector findings at error level
    # stopped: the kernel is shut down and the recording is complete

Every wait is for a message (idle, a reply, a line in the session file), never
a fixed sleep.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .frontend import FrontendClient, FrontendTimeout, RequestResult
from .inspectors import Checker, Finding, Severity
from .proxy.process import RecorderProcess
from .session import read_session
from .session.records import Record
from .timeline import Timeline, build_timeline


class KernelError(AssertionError):
    """Code run with `execute` raised in the kernel; str() holds the traceback."""


def model_name(cls: str) -> str:
    """"IntSlider" and "IntSliderModel" both name the model class "IntSliderModel"."""
    return cls if cls.endswith("Model") else cls + "Model"


@dataclass(frozen=True)
class Widget:
    """A widget model as the front-end knows it (a handle: the state is read live)."""

    session: "WidgetSession"
    id: str

    @property
    def model_name(self) -> str:
        return str(self.state.get("_model_name", ""))

    @property
    def state(self) -> dict[str, Any]:
        """The front-end's view of the model's state (kernel updates and echoes applied)."""
        return self.session.client.models.get(self.id, {})

    def __getitem__(self, key: str) -> Any:
        return self.state[key]

    def update(self, state: dict[str, Any] | None = None, **kw: Any) -> RequestResult:
        return self.session.update(self, state, **kw)

    def click(self) -> RequestResult:
        return self.session.custom(self, {"event": "click"})

    def request_state(self) -> dict[str, Any]:
        return self.session.request_state(self)

    def __str__(self) -> str:
        return f"{self.model_name.removesuffix('Model')} {self.id[:8]}"


class WidgetSession:
    def __init__(self, output: str | os.PathLike[str], *, kernel: str = "python3", redact: Sequence[str] = (),
                 timeout: float = 60.0, env: dict[str, str] | None = None):
        self.path = Path(output)
        self.kernel = kernel
        self.redact = list(redact)
        self.timeout = timeout
        self.env = env
        self.recorder: RecorderProcess | None = None
        self._client: FrontendClient | None = None
        self._seen_ids: list[str] = []  # message ids the front-end sent or received, for sync()
        self.stopped = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "WidgetSession":
        args = [a for pattern in self.redact for a in ("--redact", pattern)]
        self.recorder = RecorderProcess(self.path, self.kernel, extra_args=args, env=self.env).start()
        try:
            self._client = FrontendClient(str(self.recorder.connection_file), timeout=self.timeout)
        except BaseException:
            self.recorder.__exit__(None, None, None)
            raise
        return self

    def stop(self) -> int:
        """Disconnect, shut the kernel down (the recorder's Ctrl-C) and finish the
        recording; returns the recorder's exit status. Safe to call twice."""
        if self.stopped:
            return 0
        self.stopped = True
        if self._client is not None:
            self._client.close()
        if self.recorder is None:
            return 0
        try:
            return self.recorder.stop(timeout=self.timeout)
        finally:
            self.recorder.__exit__(None, None, None)

    def __enter__(self) -> "WidgetSession":
        return self if self.recorder is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client(self) -> FrontendClient:
        """The underlying front-end driver (widgetspy.frontend.FrontendClient)."""
        if self._client is None:
            raise RuntimeError("the widget session is not started")
        return self._client

    @property
    def connection_file(self) -> Path:
        assert self.recorder is not None
        return self.recorder.connection_file

    # ------------------------------------------------------------ the front-end

    def execute(self, code: str, *, stdin_reply: str | None = None, timeout: float | None = None,
                raise_on_error: bool = True) -> RequestResult:
        """Run code as a notebook cell; wait for its reply and idle. An exception in
        the kernel raises KernelError unless raise_on_error=False."""
        result = self.client.execute(code, stdin_reply=stdin_reply, timeout=timeout)
        self._saw(result)
        if raise_on_error and result.error:
            err = result.error
            tb = "\n".join(err.get("traceback") or []) or f"{err.get('ename')}: {err.get('evalue')}"
            raise KernelError(f"the kernel raised {err.get('ename')} running:\n{code}\n{_strip_ansi(tb)}")
        return result

    def models(self) -> list[Widget]:
        """Every open widget model the front-end knows, oldest first."""
        return [Widget(self, cid) for cid in self.client.models]

    def find(self, cls: str) -> list[Widget]:
        """Open widgets of a class ("IntSlider" or "IntSliderModel"), oldest first."""
        return [Widget(self, cid) for cid in self.client.find(model_name(cls))]

    def widget(self, cls: str, index: int = -1) -> Widget:
        """One widget of a class: the newest by default."""
        found = self.find(cls)
        if not found:
            known = sorted({str(s.get("_model_name")) for s in self.client.models.values()})
            raise LookupError(f"no open {model_name(cls)}; the front-end knows {', '.join(known) or 'no models'}")
        return found[index]

    def update(self, widget: Widget | str, state: dict[str, Any] | None = None, **kw: Any) -> RequestResult:
        """Send `update` as a browser does (bytes values become binary buffers) and
        wait for the kernel to be idle for it: its echo_update and any corrective
        update have arrived (see `echo`)."""
        cid = _cid(widget)
        result = self.client.update(cid, {**(state or {}), **kw})
        self._saw(result)
        return result

    def send_update(self, widget: Widget | str, state: dict[str, Any] | None = None, **kw: Any) -> str:
        """Send `update` without waiting; returns its msg_id for `wait_idle`."""
        from .buffers import remove_buffers

        cid = _cid(widget)
        full = {**(state or {}), **kw}
        json_state, paths, buffers = remove_buffers(full)
        if cid in self.client.models:
            self.client.models[cid].update(full)
        msg_id = self.client.send("comm_msg", {"comm_id": cid, "data": {
            "method": "update", "state": json_state, "buffer_paths": paths}}, buffers=buffers)
        self._seen_ids.append(msg_id)
        return msg_id

    def wait_idle(self, msg_id: str, *, timeout: float | None = None) -> RequestResult:
        """Wait for the kernel's `status: idle` for a message sent earlier."""
        result = self.client.wait_idle(msg_id, timeout=timeout)
        self._saw(result)
        return result

    @staticmethod
    def echo(result: RequestResult) -> dict[str, Any] | None:
        """The state the kernel echoed for an update (None: no echo_update)."""
        for m in result.of_type("comm_msg"):
            data = m["content"].get("data", {})
            if data.get("method") == "echo_update":
                return data.get("state")
        return None

    def custom(self, widget: Widget | str, content: dict[str, Any], buffers: Sequence[bytes] = ()) -> RequestResult:
        """A widget `custom` message (a Button's click is {"event": "click"})."""
        result = self.client.comm_msg(_cid(widget), {"method": "custom", "content": content}, buffers)
        self._saw(result)
        return result

    def click(self, widget: Widget | str) -> RequestResult:
        return self.custom(widget, {"event": "click"})

    def request_state(self, widget: Widget | str) -> dict[str, Any]:
        """Ask the kernel for the full state, as a reloaded page does."""
        return self.client.request_state(_cid(widget))

    def comm_open(self, target: str, data: dict[str, Any], *, metadata: dict[str, Any] | None = None) -> str:
        cid, result = self.client.comm_open(target, data, metadata=metadata)
        self._saw(result)
        return cid

    def close_widget(self, widget: Widget | str) -> RequestResult:
        """The front-end closes a widget (comm_close)."""
        result = self.client.comm_close(_cid(widget))
        self._saw(result)
        return result

    # ------------------------------------------------------------ the recording

    def sync(self, timeout: float | None = None) -> None:
        """Wait until the recorder has written every message this front-end sent
        or received so far (the recorder writes from its own thread)."""
        wanted = [i.encode() for i in self._seen_ids[-8:]]
        received = self.client.received
        if received:
            wanted.append(received[-1]["header"]["msg_id"].encode())
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            data = self.path.read_bytes() if self.path.exists() else b""
            if all(w in data for w in wanted):
                return
            if time.monotonic() > deadline:
                raise FrontendTimeout(f"the recorder did not write the latest messages into {self.path}")
            time.sleep(0.005)

    @property
    def records(self) -> list[Record]:
        """The session so far (after the front-end's latest message)."""
        if not self.stopped:
            self.sync()
        return read_session(self.path)[1]

    @property
    def timeline(self) -> Timeline:
        """The widget-state timeline of the session so far (docs/timeline.md)."""
        return build_timeline(self.records)

    @property
    def findings(self) -> list[Finding]:
        """Inspector findings of the session so far (docs/rules.md), end-of-session checks included."""
        return Checker().check(self.records)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity >= Severity.ERROR]

    def assert_clean(self, level: str = "error", ignore: Iterable[str] = ()) -> None:
        """Fail when a finding at or above `level` exists (rule ids in `ignore` aside)."""
        sev = Severity.parse(level)
        skip = set(ignore)
        bad = [f for f in self.findings if f.severity >= sev and f.rule_id not in skip]
        if bad:
            raise AssertionError(f"{len(bad)} inspector finding(s) at or above {level}:\n"
                                 + "\n".join(f"  {f.one_line()}" for f in bad))

    # ------------------------------------------------------------ helpers

    def _saw(self, result: RequestResult) -> None:
        self._seen_ids.append(result.msg_id)
        if result.iopub:
            self._seen_ids.append(result.iopub[-1]["header"]["msg_id"])
        if result.reply:
            self._seen_ids.append(result.reply["header"]["msg_id"])
        del self._seen_ids[:-16]


def _cid(widget: Widget | str) -> str:
    return widget.id if isinstance(widget, Widget) else widget


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
