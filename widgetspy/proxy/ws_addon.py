"""The websocket tap: a mitmproxy addon, run as ``mitmdump -s ws_addon.py``.

`widgetspy record --web` starts mitmdump as a child process in reverse-proxy
mode in front of a Jupyter server, with this file as its script (mitmproxy's
maintainers recommend a `mitmdump -s` child over embedding its master, whose
API changes between releases). Options (``--set name=value``):

- ``widgetspy_out``: folder for the per-kernel websocket sessions (required);
- ``widgetspy_upstream``: written into the session headers, for the record.

Hooks block the flow until they return, and mitmproxy keeps every message of a
live websocket in memory, so per message this does the minimum: decode, one
``write(2)`` of the line, and clear ``flow.websocket.messages``. Other HTTP and
websocket traffic passes untouched (websocket messages of other sockets are
only counted, and trimmed from memory too). Nothing of a request's headers,
cookies or query secrets is written; paths are stored with ``token=`` redacted.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from widgetspy import __version__
from widgetspy.proxy.ws_capture import KernelWs, WsCapture
from widgetspy.session.files import SessionWriter
from widgetspy.session.format import FORMAT_VERSION
from widgetspy.session.records import Record, SessionHeader

log = logging.getLogger("widgetspy.ws")


def ws_session_path(out_dir: Path, kernel_id: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in kernel_id)
    return out_dir / f"{stamp}-ws-{safe}-{os.getpid()}.jsonl"


class WsRecorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.capture = WsCapture()
        self.writers: dict[str, SessionWriter] = {}
        self.out_dir: Path | None = None
        self.upstream = ""
        self.failed = False

    # ------------------------------------------------------------ mitmproxy hooks

    def load(self, loader: Any) -> None:
        loader.add_option("widgetspy_out", str, "", "widgetspy: folder for websocket sessions")
        loader.add_option("widgetspy_upstream", str, "", "widgetspy: the upstream server, for the header")

    def configure(self, updated: Any) -> None:
        from mitmproxy import ctx

        if "widgetspy_out" in updated and ctx.options.widgetspy_out:
            self.out_dir = Path(ctx.options.widgetspy_out)
            self.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if "widgetspy_upstream" in updated:
            self.upstream = ctx.options.widgetspy_upstream

    def response(self, flow: Any) -> None:
        # a refused kernel websocket upgrade (403 cross-origin, 404 unknown kernel): record why
        req = flow.request
        if flow.response.status_code != 101 and req.headers.get("upgrade", "").lower() == "websocket":
            self._write(self.capture.refused(req.path, flow.response.status_code, self.clock()))

    def websocket_start(self, flow: Any) -> None:
        protocol = flow.response.headers.get("sec-websocket-protocol") if flow.response else None
        self._write(self.capture.opened(flow.id, flow.request.path, protocol, self.clock()))

    def websocket_message(self, flow: Any) -> None:
        messages = flow.websocket.messages
        m = messages[-1]
        try:
            self._write(self.capture.message(flow.id, m.from_client, m.content, m.is_text, self.clock()))
        finally:
            messages.clear()  # written (or not ours): mitmproxy needn't keep it

    def websocket_end(self, flow: Any) -> None:
        ws = flow.websocket
        by = None if ws.closed_by_client is None else ("client" if ws.closed_by_client else "server")
        self._write(self.capture.closed(flow.id, ws.close_code, ws.close_reason, by, self.clock()))

    def done(self) -> None:
        t = self.clock()
        for kid, writer in self.writers.items():
            k = self.capture.kernels[kid]
            try:
                writer.write_many(self.capture.stopped(k, t))
            finally:
                writer.close()
        self.writers.clear()

    # ------------------------------------------------------------ writing

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def _write(self, result: tuple[KernelWs, list[Record]] | None) -> None:
        if result is None or self.failed:
            return
        k, records = result
        writer = self.writers.get(k.kernel_id)
        try:
            if writer is None:
                writer = self.writers[k.kernel_id] = self._open(k.kernel_id)
            writer.write_many(records) if len(records) > 1 else writer.write(records[0])
        except Exception as exc:  # never break the user's traffic because the recording failed
            self.failed = True
            log.error("widgetspy: websocket recording stopped: %s", exc)

    def _open(self, kernel_id: str) -> SessionWriter:
        if self.out_dir is None:
            raise RuntimeError("widgetspy_out is not set")
        header = SessionHeader(
            format_version=FORMAT_VERSION,
            widgetspy_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            kernel={"id": kernel_id},
            taps=["ws"],
            recorder={
                "mode": "web",
                "pid": os.getpid(),
                "kernel_id": kernel_id,
                "monotonic_t0": self.t0,
                "upstream": self.upstream,
            },
        )
        return SessionWriter(ws_session_path(self.out_dir, kernel_id), header)


addons = [WsRecorder()]
