"""The websocket tap's recorder process: ``python -m widgetspy.proxy.ws_recorder``.

The mitmproxy addon (`ws_addon.py`) starts it at load and writes what its hooks
saw (raw frames, opens, closes, refused upgrades, learned credentials; see
`ws_wire`) to its stdin, an anonymous pipe. This process decodes the stream,
runs each batch through the sans-IO `WsCapture` and the `Redactor`, and writes
each kernel's lines of the batch to that kernel's session file with one
``write(2)``. So decoding, base64, sha256 and the file writes use their own
process (and GIL), not mitmproxy's event loop.

It stops only at end of stream: the addon closes the pipe at shutdown (or the
kernel does, when mitmdump dies in any way), and everything read is written
before the files get their `ws_recording_stopped` and are closed. SIGINT and
SIGTERM are ignored for that reason: a Ctrl-C in mitmdump's terminal reaches
this process too, and must not cut the stream short. A stream that ends inside
an item (mitmdump killed mid-write) loses only that item, and says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from widgetspy import __version__
from widgetspy.proxy.memory import keep_freed_memory
from widgetspy.proxy.redact import RedactionError, Redactor
from widgetspy.proxy.ws_capture import KernelWs, WsCapture, redact_url
from widgetspy.proxy.ws_wire import CLOSED, MESSAGE, OPENED, REFUSED, SECRETS, WireDecoder, WireError
from widgetspy.session.files import SessionWriter
from widgetspy.session.format import FORMAT_VERSION
from widgetspy.session.records import Record, SessionHeader

READ_SIZE = 4 << 20  # bytes per read(2): a batch is whatever the pipe holds, up to this


def say(text: str) -> None:
    """One line on stderr (mitmdump's terminal), for failures."""
    try:
        sys.stderr.write(f"widgetspy ws recorder: {text}\n")
        sys.stderr.flush()
    except Exception:
        pass


def ws_session_path(out_dir: Path, kernel_id: str, pid: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in kernel_id)
    return out_dir / f"{stamp}-ws-{safe}-{pid}.jsonl"


class WsSessions:
    """Wire items -> redacted session lines, one session file per kernel. The I/O is the file writes."""

    def __init__(self, out_dir: Path, upstream: str, t0: float, pid: int) -> None:
        self.out_dir = out_dir
        self.upstream = upstream
        self.t0 = t0  # the addon's CLOCK_MONOTONIC origin: every t in the stream is relative to it
        self.pid = pid  # mitmdump's, for the file names and the header
        self.capture = WsCapture()
        self.writers: dict[str, SessionWriter] = {}
        self.failed = False
        self.redactor = self._redactor([])

    @staticmethod
    def _redactor(secrets: list[str]) -> Redactor:
        """Default token patterns, $WIDGETSPY_REDACT, and the credentials seen on requests, as literals."""
        literals = [re.escape(s) for s in secrets]
        try:
            return Redactor.for_recording(None, literals, buffers="literals")
        except RedactionError as exc:
            say(f"{exc}; only the default patterns apply")
            return Redactor.for_recording(None, literals, environ={}, buffers="literals")

    def batch(self, items: list[tuple[Any, ...]]) -> None:
        """Records of a batch, grouped per kernel in order, one write per kernel."""
        cap = self.capture
        out: dict[str, tuple[KernelWs, list[Record]]] = {}
        for item in items:
            kind = item[0]
            try:
                if kind == MESSAGE:
                    _, conn, from_client, is_text, t, payload = item
                    result = cap.message(conn, from_client, payload, is_text, t)
                elif kind == OPENED:
                    result = cap.opened(item[1], item[2], item[3], item[4])
                elif kind == CLOSED:
                    result = cap.closed(item[1], item[2], item[3], item[4], item[5])
                elif kind == REFUSED:
                    result = cap.refused(item[1], item[2], item[3])
                elif kind == SECRETS:
                    for k, records in out.values():  # what came before is written with the patterns it had
                        self._write(k, records)
                    out.clear()
                    self.redactor = self._redactor(item[1])
                    continue
                else:
                    raise WireError(f"unknown item kind {kind!r}")
            except Exception as exc:  # a bug in the core must not stop the recording of what follows
                say(f"websocket record dropped: {exc!r}")
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
            lines, _ = self.redactor.encode_lines(records)
            writer.write_lines(lines)
        except Exception as exc:
            self.failed = True
            say(f"recording stopped: {exc}")

    def close(self) -> None:
        """A `ws_recording_stopped` per kernel, and close the files (idempotent)."""
        t = time.monotonic() - self.t0
        for kid, writer in self.writers.items():
            try:
                if not self.failed:
                    writer.write_lines(self.redactor.encode_lines(self.capture.stopped(self.capture.kernels[kid], t))[0])
            except Exception as exc:
                say(f"recording stopped: {exc}")
            finally:
                writer.close()
        self.writers.clear()

    def _open(self, kernel_id: str) -> SessionWriter:
        header = SessionHeader(
            format_version=FORMAT_VERSION,
            widgetspy_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            kernel={"id": kernel_id},
            taps=["ws"],
            recorder={
                "mode": "web",
                "pid": self.pid,
                "kernel_id": kernel_id,
                "monotonic_t0": self.t0,
                "upstream": redact_url(self.upstream),
            },
        )
        return SessionWriter(ws_session_path(self.out_dir, kernel_id, self.pid), header)


def run(fd: int, sessions: WsSessions) -> int:
    """Read the stream from `fd` to its end, batch by batch; 0, or 1 if the stream was cut or broken."""
    decoder = WireDecoder()
    status = 0
    try:
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except InterruptedError:
                continue
            if not data:
                break
            try:
                items = decoder.feed(data)
            except WireError as exc:
                say(f"recording stopped: {exc}")
                return 1
            if items:
                sessions.batch(items)
        if decoder.pending:
            say(f"the stream ended inside an item ({decoder.pending} bytes): that item is lost")
            status = 1
    finally:
        sessions.close()
    return 1 if sessions.failed else status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m widgetspy.proxy.ws_recorder", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for the per-kernel websocket sessions")
    ap.add_argument("--upstream", default="", help="the upstream server, for the headers")
    ap.add_argument("--t0", type=float, required=True, help="the addon's CLOCK_MONOTONIC origin")
    ap.add_argument("--pid", type=int, default=os.getppid(), help="mitmdump's pid, for file names and headers")
    args = ap.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # stop at end of stream, never in the middle of it
    keep_freed_memory()  # a big message's frames, base64 and line reuse the last one's pages
    try:
        args.out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        say(f"cannot create {args.out}: {exc.strerror}")
        return 2
    return run(sys.stdin.fileno(), WsSessions(args.out, args.upstream, args.t0, args.pid))


if __name__ == "__main__":
    sys.exit(main())
