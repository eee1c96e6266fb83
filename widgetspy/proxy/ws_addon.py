"""The websocket tap: a mitmproxy addon, run as ``mitmdump -s ws_addon.py``.

`widgetspy record --web` starts mitmdump as a child process in reverse-proxy
mode in front of a Jupyter server, with this file as its script (mitmproxy's
maintainers recommend a `mitmdump -s` child over embedding its master, whose
API changes between releases). Options (``--set name=value``):

- ``widgetspy_out``: folder for the per-kernel websocket sessions (required);
- ``widgetspy_upstream``: written into the session headers, for the record.

Hooks block the flow until they return, and mitmproxy keeps every message of a
live websocket in memory. So the message hook only stamps the time, queues
``(conn, direction, payload, text?, t)`` and clears ``flow.websocket.messages``:
about 1 µs, and mitmproxy forwards the message right away. A timer on
mitmproxy's event loop (`BATCH_DELAY` after the first queued item) frames the
batch (`ws_wire`: a 18-byte head per message, the payload not copied) and hands
it to the recorder process with one ``writev(2)`` on a pipe. That process
(`ws_recorder.py`, started here when ``widgetspy_out`` is set) decodes, redacts
and writes the sessions: decoding, base64, sha256 and the file writes cost
mitmdump's event loop nothing. Opens, closes, refused upgrades and learned
credentials go through the same queue and pipe, so the files keep the hooks'
order.

Back-pressure, not loss: the pipe holds `PIPE_SIZE` bytes; when the recorder
falls behind, the batch's write waits for it (the event loop, and so the
forwarding, waits too: the in-process recorder did the same work in the loop).
Memory stays flat: the backlog is the pipe plus one batch. A recorder that
takes no bytes for `STALL_TIMEOUT` is given up. When the recorder process exits
or is given up, the recording stops with an error on mitmdump's terminal,
every further message is only forwarded (the browser sees nothing), and the
session files keep everything the recorder had received. At shutdown
(mitmproxy's ``done``: SIGTERM, SIGINT; or at exit) the queue is written, the
pipe closed, and the recorder drains it, closes the files and exits before
mitmdump does; if mitmdump dies hard, the recorder still gets everything it
wrote, as end of stream.

Because the hook frees every message it queued once it is sent, the addon lets
mitmdump's malloc reuse freed big blocks (`memory.keep_freed_memory`): without
it each 1 MB message maps and faults in fresh pages, in mitmdump and in the
recorder (benchmarks/bench_ws.py).

Other HTTP and websocket traffic passes untouched (websocket messages of other
sockets are only counted, and trimmed from memory too). Nothing of a request's
headers, cookies or query secrets is written; paths are stored with ``token=``
redacted (by the recorder: the pipe carries raw data and is readable only by
the two processes).
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import widgetspy
from widgetspy.proxy.memory import keep_freed_memory
from widgetspy.proxy.ws_capture import kernel_id_from_path, request_secrets
from widgetspy.proxy import ws_wire

log = logging.getLogger("widgetspy.ws")

BATCH_DELAY = 0.005  # s a batch gathers after its first item before it goes to the recorder
PIPE_SIZE = 4 << 20  # bytes the pipe to the recorder holds (1 MiB if the system refuses more)
STALL_TIMEOUT = 5.0  # s the recorder may take no bytes before it is given up (the forwarding waits that long)
SHUTDOWN_TIMEOUT = 10.0  # s to wait at shutdown for the recorder to write what it was sent (WsProxy waits 15)
IOV_MAX = 1024

# queue items: (kind, ...) tuples, framed in order by _send
_MESSAGE, _OPENED, _CLOSED, _REFUSED, _SECRETS = (ws_wire.MESSAGE, ws_wire.OPENED, ws_wire.CLOSED,
                                                  ws_wire.REFUSED, ws_wire.SECRETS)
MAX_SECRETS = 256  # credentials learned from requests, redacted as literals
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class RecorderGone(Exception):
    """The recorder process no longer takes the stream; str() is one line."""


def write_all(fd: int, pieces: list[bytes], timeout: float) -> None:
    """All of `pieces`, in order, to the non-blocking `fd`: ``writev`` as far as the pipe takes them,
    then wait until it takes more. RecorderGone when the reader is gone or takes nothing for `timeout` s."""
    views = [memoryview(p) for p in pieces if p]
    i = 0
    poller: select.poll | None = None
    while i < len(views):
        try:
            n = os.writev(fd, views[i:i + IOV_MAX])
        except BlockingIOError:
            n = 0
        except BrokenPipeError:
            raise RecorderGone("the recorder process is gone (broken pipe)") from None
        while n:
            size = len(views[i])
            if n >= size:
                n -= size
                i += 1
            else:
                views[i] = views[i][n:]
                n = 0
        if i < len(views):
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            if not poller.poll(timeout * 1000):
                raise RecorderGone(f"the recorder process took nothing for {timeout:.0f} s")


class WsRecorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.out_dir: Path | None = None
        self.upstream = ""
        self.failed = False
        self.other_ws_messages = 0
        self.lost_messages = 0  # queued for a recorder that was gone: forwarded, not recorded
        self._conns: dict[str, int] = {}  # flow id -> conn number, for kernel channel websockets
        self._next_conn = 0
        self._queue: list[tuple[Any, ...]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self._secrets: set[str] = set()  # credentials seen on requests (sent to the recorder, never written)
        self.proc: subprocess.Popen | None = None
        self._fd: int | None = None  # the pipe's write end
        self._pidfd: int | None = None
        atexit.register(self.close)  # if mitmproxy exits without its done hook

    # ------------------------------------------------------------ mitmproxy hooks (event loop thread)

    def load(self, loader: Any) -> None:
        # the messages this addon trims are freed at once: let the next big one reuse their pages
        keep_freed_memory()
        loader.add_option("widgetspy_out", str, "", "widgetspy: folder for websocket sessions")
        loader.add_option("widgetspy_upstream", str, "", "widgetspy: the upstream server, for the header")

    def configure(self, updated: Any) -> None:
        from mitmproxy import ctx

        if "widgetspy_upstream" in updated:
            self.upstream = ctx.options.widgetspy_upstream
        if "widgetspy_out" in updated and ctx.options.widgetspy_out and self.proc is None:
            self.out_dir = Path(ctx.options.widgetspy_out)
            self.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.start_recorder()

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
        self._next_conn += 1
        self._conns[flow.id] = conn = self._next_conn
        protocol = flow.response.headers.get("sec-websocket-protocol") if flow.response else None
        self._put((_OPENED, conn, path, protocol, self.clock()))

    def websocket_message(self, flow: Any) -> None:
        messages = flow.websocket.messages
        conn = self._conns.get(flow.id)
        if conn is not None and not self.failed:
            m = messages[-1]
            self._put((_MESSAGE, conn, m.from_client, m.content, m.is_text, self.clock()))
        elif conn is None:
            self.other_ws_messages += 1
        else:
            self.lost_messages += 1
        messages.clear()  # queued (or not ours): mitmproxy needn't keep it

    def websocket_end(self, flow: Any) -> None:
        conn = self._conns.pop(flow.id, None)
        if conn is None:
            return
        ws = flow.websocket
        by = None if ws.closed_by_client is None else ("client" if ws.closed_by_client else "server")
        self._put((_CLOSED, conn, ws.close_code, ws.close_reason, by, self.clock()))

    def done(self) -> None:
        self.close()

    # ------------------------------------------------------------ the recorder process

    def start_recorder(self) -> None:
        """The recorder process, reading a new pipe on its stdin (mode 0600-equivalent: an anonymous pipe)."""
        r, w = os.pipe()
        try:
            try:
                fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                try:
                    fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
                except OSError:
                    pass
            argv = [sys.executable, "-m", "widgetspy.proxy.ws_recorder", "--out", str(self.out_dir),
                    "--upstream", self.upstream, "--t0", repr(self.t0), "--pid", str(os.getpid())]
            env = dict(os.environ)  # the widgetspy this addon imported, whatever put it on mitmdump's sys.path
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(widgetspy.__file__).parent.parent),
                                                              env.get("PYTHONPATH")]))
            self.proc = subprocess.Popen(argv, stdin=r, close_fds=True, env=env)
        except OSError as exc:
            os.close(w)
            self._fail(f"cannot start the recorder process: {exc}")
            return
        finally:
            os.close(r)
        os.set_blocking(w, False)
        self._fd = w
        try:  # report a recorder that dies while the sockets are idle right away, not at the next message
            self._pidfd = os.pidfd_open(self.proc.pid)
            asyncio.get_running_loop().add_reader(self._pidfd, self._recorder_exited)
        except (AttributeError, OSError, RuntimeError):
            pass

    def _recorder_exited(self) -> None:
        self._unwatch()
        if not self._closed and self.proc is not None:
            self._fail(f"the recorder process exited (status {self.proc.wait()})")

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._pidfd)
            except (RuntimeError, ValueError):
                pass
            os.close(self._pidfd)
            self._pidfd = None

    def _fail(self, why: str) -> None:
        """Stop recording (forwarding goes on), say why once, and let go of the pipe."""
        if not self.failed:
            self.failed = True
            log.error("widgetspy: websocket recording stopped: %s; traffic is still forwarded, "
                      "the session files hold what was recorded until now", why)
        self._queue.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------ queue

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def _put(self, item: tuple[Any, ...]) -> None:
        if self._closed or self.failed:
            return
        self._queue.append(item)
        if self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_later(BATCH_DELAY, self._flush)
            except RuntimeError:  # no event loop (not under mitmproxy): send now
                self._flush()

    def _flush(self) -> None:
        self._flush_handle = None
        batch, self._queue = self._queue, []
        if batch:
            self._send(batch)

    def _send(self, batch: list[tuple[Any, ...]]) -> None:
        """A batch to the recorder: framed, one writev (more only when the pipe is full)."""
        if self.failed:
            return
        if self._fd is None:
            self._fail("widgetspy_out is not set" if self.out_dir is None else "no recorder process")
            return
        pieces: list[bytes] = []
        add = pieces.append
        msg_head = ws_wire.encode_message
        event = ws_wire.encode_event
        for item in batch:
            if item[0] == _MESSAGE:
                _, conn, from_client, payload, is_text, t = item
                add(msg_head(conn, from_client, is_text, t, len(payload)))
                add(payload)
            else:
                add(event(item[0], list(item[1:])))
        try:
            write_all(self._fd, pieces, STALL_TIMEOUT)
        except RecorderGone as exc:
            status = self.proc.poll() if self.proc is not None else None
            self._fail(str(exc) if status is None else f"the recorder process exited (status {status})")

    def close(self) -> None:
        """Send everything queued, close the pipe, and wait for the recorder to close the files (idempotent)."""
        if self._closed:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._closed = True
        self._unwatch()
        if self._fd is not None:
            os.close(self._fd)  # end of stream: the recorder writes what it has, closes the files, exits
            self._fd = None
        if self.proc is not None:
            try:
                status = self.proc.wait(1.0 if self.failed else SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("widgetspy: the recorder process is still writing after %.0f s; left running", SHUTDOWN_TIMEOUT)
                return
            if status != 0 and not self.failed:
                log.error("widgetspy: the recorder process exited with status %s", status)
        if self.lost_messages:
            log.error("widgetspy: %d websocket messages were forwarded but not recorded", self.lost_messages)


addons = [WsRecorder()]
