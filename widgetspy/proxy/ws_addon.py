"""The websocket tap: a mitmproxy addon, run as ``mitmdump -s ws_addon.py``.

`widgetspy record --web` starts mitmdump as a child process in reverse-proxy
mode in front of a Jupyter server, with this file as its script (mitmproxy's
maintainers recommend a `mitmdump -s` child over embedding its master, whose
API changes between releases). Options (``--set name=value``):

- ``widgetspy_out``: folder for the per-kernel websocket sessions (required);
- ``widgetspy_upstream``: written into the session headers, for the record.

Hooks block the flow until they return, and mitmproxy keeps every message of a
live websocket in memory. So the message hook only stamps the time, queues
``(flow id, direction, payload, text?, t)`` and clears
``flow.websocket.messages``: about 1 µs, and mitmproxy forwards the message
right away. A timer on mitmproxy's event loop (`BATCH_DELAY` after the first
queued item) takes the batch, runs it through the sans-IO `WsCapture` (decode,
records) and the redactor, and writes each kernel's lines of the batch with one
``write(2)``. Opens, closes, refused upgrades and learned credentials go through
the same queue, so the file keeps the hooks' order.

Batching in the loop, not in a writer thread: the work holds the GIL either way
(decoding, base64), and a second thread that wants the GIL makes every socket
call of the event loop a GIL hand-off, which measured slower for 1 MB messages.
The backlog is what arrives in `BATCH_DELAY`, so memory stays flat. At shutdown
(mitmproxy's ``done``: SIGTERM, SIGINT; or at exit) what is queued is written
before the files are closed; a hard crash loses at most the last `BATCH_DELAY`.

Other HTTP and websocket traffic passes untouched (websocket messages of other
sockets are only counted, and trimmed from memory too). Nothing of a request's
headers, cookies or query secrets is written; paths are stored with ``token=``
redacted.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as _dt
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from widgetspy import __version__
from widgetspy.proxy.redact import RedactionError, Redactor
from widgetspy.proxy.ws_capture import KernelWs, WsCapture, kernel_id_from_path, redact_url, request_secrets
from widgetspy.session.files import SessionWriter
from widgetspy.session.format import FORMAT_VERSION
from widgetspy.session.records import Record, SessionHeader

log = logging.getLogger("widgetspy.ws")

BATCH_DELAY = 0.005  # s a batch gathers after its first item before it is decoded and written

# queue items: (kind, ...) tuples, fed to WsCapture in order by _write_batch
_MESSAGE, _OPENED, _CLOSED, _REFUSED, _SECRETS = range(5)
MAX_SECRETS = 256  # credentials learned from requests, redacted as literals


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
        self.other_ws_messages = 0
        self._recorded: set[str] = set()  # flow ids of kernel channel websockets
        self._queue: list[tuple[Any, ...]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self._secrets: set[str] = set()  # credentials seen on requests (never written)
        self.redactor = self._redactor([])
        atexit.register(self.close)  # if mitmproxy exits without its done hook

    @staticmethod
    def _redactor(secrets: list[str]) -> Redactor:
        """Default token patterns, $WIDGETSPY_REDACT, and the credentials seen on requests, as literals."""
        literals = [re.escape(s) for s in secrets]
        try:
            return Redactor.for_recording(None, literals, buffers="literals")
        except RedactionError as exc:
            log.error("widgetspy: %s; only the default patterns apply", exc)
            return Redactor.for_recording(None, literals, environ={}, buffers="literals")

    # ------------------------------------------------------------ mitmproxy hooks (event loop thread)

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

    def requestheaders(self, flow: Any) -> None:
        # once per HTTP request (not per websocket message): learn its credentials, to redact them
        found = request_secrets(flow.request.path, flow.request.headers.items(multi=True))
        new = [s for s in found if s not in self._secrets]
        if new and len(self._secrets) < MAX_SECRETS:
            self._secrets.update(new)
            self._put((_SECRETS, sorted(self._secrets)))

    def response(self, flow: Any) -> None:
        # a refused kernel websocket upgrade (403 cross-origin, 404 unknown kernel): record why
        req = flow.request
        if flow.response.status_code != 101 and req.headers.get("upgrade", "").lower() == "websocket":
            if kernel_id_from_path(req.path) is not None:
                self._put((_REFUSED, req.path, flow.response.status_code, self.clock()))

    def websocket_start(self, flow: Any) -> None:
        path = flow.request.path
        if kernel_id_from_path(path) is None:
            return
        self._recorded.add(flow.id)
        protocol = flow.response.headers.get("sec-websocket-protocol") if flow.response else None
        self._put((_OPENED, flow.id, path, protocol, self.clock()))

    def websocket_message(self, flow: Any) -> None:
        messages = flow.websocket.messages
        if flow.id in self._recorded and not self.failed:
            m = messages[-1]
            self._put((_MESSAGE, flow.id, m.from_client, m.content, m.is_text, self.clock()))
        else:
            self.other_ws_messages += 1
        messages.clear()  # queued (or not ours): mitmproxy needn't keep it

    def websocket_end(self, flow: Any) -> None:
        if flow.id not in self._recorded:
            return
        self._recorded.discard(flow.id)
        ws = flow.websocket
        by = None if ws.closed_by_client is None else ("client" if ws.closed_by_client else "server")
        self._put((_CLOSED, flow.id, ws.close_code, ws.close_reason, by, self.clock()))

    def done(self) -> None:
        self.close()

    # ------------------------------------------------------------ queue

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def _put(self, item: tuple[Any, ...]) -> None:
        if self._closed:
            return
        self._queue.append(item)
        if self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_later(BATCH_DELAY, self._flush)
            except RuntimeError:  # no event loop (not under mitmproxy): write now
                self._flush()

    def _flush(self) -> None:
        self._flush_handle = None
        batch, self._queue = self._queue, []
        if batch:
            self._write_batch(batch)

    def close(self) -> None:
        """Write everything queued, a `ws_recording_stopped` per kernel, and close the files (idempotent)."""
        if self._closed:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._closed = True
        self._stop(self.clock())

    # ------------------------------------------------------------ batches

    def _write_batch(self, batch: list[tuple[Any, ...]]) -> None:
        """Records of a batch, grouped per kernel in order, one write per kernel."""
        cap = self.capture
        out: dict[str, tuple[KernelWs, list[Record]]] = {}
        for item in batch:
            kind = item[0]
            try:
                if kind == _MESSAGE:
                    _, key, from_client, payload, is_text, t = item
                    result = cap.message(key, from_client, payload, is_text, t)
                elif kind == _OPENED:
                    result = cap.opened(item[1], item[2], item[3], item[4])
                elif kind == _CLOSED:
                    result = cap.closed(item[1], item[2], item[3], item[4], item[5])
                elif kind == _REFUSED:
                    result = cap.refused(item[1], item[2], item[3])
                elif kind == _SECRETS:
                    for k, records in out.values():  # what came before is written with the patterns it had
                        self._write(k, records)
                    out.clear()
                    self.redactor = self._redactor(item[1])
                    continue
                else:
                    raise ValueError(f"unknown queue item {kind!r}")
            except Exception as exc:  # a bug in the core must not stop the recording of what follows
                log.error("widgetspy: websocket record dropped: %r", exc)
                continue
            if result is not None:
                k, records = result
                entry = out.get(k.kernel_id)
                if entry is None:
                    out[k.kernel_id] = (k, records)
                else:
                    entry[1].extend(records)
        for k, records in out.values():
            self._write(k, records)

    def _write(self, k: KernelWs, records: list[Record]) -> None:
        if self.failed:
            return
        try:
            writer = self.writers.get(k.kernel_id)
            if writer is None:
                writer = self.writers[k.kernel_id] = self._open(k.kernel_id)
            data, _ = self.redactor.encode(records)
            writer.write_bytes(data)
        except Exception as exc:  # never break the user's traffic because the recording failed
            self.failed = True
            log.error("widgetspy: websocket recording stopped: %s", exc)

    def _stop(self, t: float) -> None:
        for kid, writer in self.writers.items():
            try:
                if not self.failed:
                    writer.write_bytes(self.redactor.encode(self.capture.stopped(self.capture.kernels[kid], t))[0])
            except Exception as exc:
                log.error("widgetspy: websocket recording stopped: %s", exc)
            finally:
                writer.close()
        self.writers.clear()

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
                "upstream": redact_url(self.upstream),
            },
        )
        return SessionWriter(ws_session_path(self.out_dir, kernel_id), header)


addons = [WsRecorder()]
