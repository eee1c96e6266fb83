"""The kernel shim: stands where the kernel would, starts the real one behind it.

One process does the same job for all three ways in:
- `widgetspy record --kernel NAME` runs it in-process (``owner=True``: Ctrl-C
  stops the recording, a `shutdown_request(restart=True)` restarts the kernel);
- a wrapper kernelspec runs ``python -m widgetspy.proxy.shim --kernel NAME -f {connection_file}``;
- the kernel provisioner runs ``python -m widgetspy.proxy.shim -f FILE -- <kernel argv>``.

In the last two the caller (a Jupyter server, nbclient, VS Code...) owns the
process: SIGINT interrupts the kernel, SIGTERM stops it, and when the kernel
exits the shim exits with the kernel's status.

The shim binds the ports of the client's connection file, starts the real
kernel on private loopback ports with the same key, asks it for kernel_info
(on the private ports, so that exchange is not part of the recording), writes the
session header, and then forwards and records until the kernel is gone.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import queue
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..message import Direction
from ..session.files import SessionWriteError, SessionWriter
from ..session.format import FORMAT_VERSION
from ..session.records import KERNEL_EXITED, KERNEL_RESTARTED, KERNEL_STARTED, MessageRecord, Record, SessionHeader
from .memory import keep_freed_memory
from .recorder import Recorder
from .redact import RedactionError, Redactor
from .zmq_mitm import PORT_KEYS, ProxyError, ZmqMitm

SHIM_MODULE = "widgetspy.proxy.shim"


class ShimError(Exception):
    """The shim cannot run; str() is a one-line message."""


@dataclass
class ShimOptions:
    front: dict[str, Any]  # what clients use: ip, transport, five ports (0: pick one), key, signature_scheme
    output: Path
    overwrite: bool = False
    kernel_name: str | None = None  # start this kernelspec ...
    kernel_argv: list[str] | None = None  # ... or this command (provisioner mode)
    front_connection_file: str | None = None  # its path inside kernel_argv is replaced by the private one
    interrupt_mode: str = "signal"
    language: str = ""
    display_name: str = ""
    mode: str = "record"  # record | kernelspec | provisioner: written into the header
    owner: bool = False
    startup_timeout: float = 60.0
    extra_header: dict[str, Any] = field(default_factory=dict)
    redact: list[str] = field(default_factory=list)  # extra redaction regexes (proxy/redact.py)


def exit_status(returncode: int | None) -> int:
    """A process exit status from a Popen returncode (signals as 128+n)."""
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode


class KernelShim:
    def __init__(self, opts: ShimOptions, on_ready: Callable[[dict[str, Any]], None] | None = None):
        self.opts = opts
        self.on_ready = on_ready
        self.t0 = time.monotonic()
        self.events: "queue.SimpleQueue[tuple[str, Any]]" = queue.SimpleQueue()
        self.km: Any = None
        self.mitm: ZmqMitm | None = None
        self.recorder: Recorder | None = None
        # called with the Recorder as soon as it exists, before any record is written after the header
        # (e.g. to add a listener: `widgetspy record --check`)
        self.on_recorder: Callable[[Recorder], None] | None = None
        self._shutdown_requested: dict[str, Any] | None = None
        self._stopping = False

    def clock(self) -> float:
        return time.monotonic() - self.t0

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        """Record until the kernel is gone (or Ctrl-C as owner). Returns the exit status."""
        keep_freed_memory()  # a big message's frames, base64 and line reuse the last one's pages
        old_handlers = self._install_signal_handlers()
        try:
            return self._run()
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self._teardown()

    def _run(self) -> int:
        front = dict(self.opts.front)
        try:
            self.mitm = ZmqMitm(front, {}, on_batch=lambda b: self.recorder.on_batch(b), clock=self.clock)  # type: ignore[union-attr]
            self.mitm.bind()
        except ProxyError as exc:
            raise ShimError(str(exc)) from None
        self.opts.front = front = self.mitm.front_info
        self.km = self._make_manager()
        self._start_kernel()
        try:
            info = self._kernel_info()
        except ShimError:
            self._write_header({})
            rc = self.km.provisioner.process.poll() if self.km.has_kernel else None
            self.recorder.event(KERNEL_EXITED, exit_code=rc, expected=False, cause="died during start-up")  # type: ignore[union-attr]
            raise
        self._write_header(info)
        assert self.recorder is not None
        self.recorder.listeners.append(self._watch_requests)
        self.recorder.event(KERNEL_STARTED, pid=self._kernel_pid())
        self.mitm.back_info = self.km.get_connection_info()
        self.mitm.start()
        self._watch_kernel()
        if self.on_ready:
            self.on_ready(front)
        return self._main_loop()

    def _main_loop(self) -> int:
        assert self.recorder is not None
        while True:
            kind, value = self.events.get()
            if kind == "signal":
                if value == signal.SIGINT and not self.opts.owner:
                    self.recorder.event("kernel_interrupted", by="signal")
                    self.km.interrupt_kernel()
                    continue
                self._stopping = True
                self.recorder.event("stop_requested", signal=signal.Signals(value).name)
                self._shutdown_kernel()
                continue  # the exit watcher reports the end
            if kind == "exit":
                returncode = value
                self.mitm.settle()  # type: ignore[union-attr]
                restart = self._shutdown_requested or {}
                if self.opts.owner and not self._stopping and restart.get("restart"):
                    self._restart_kernel(returncode)
                    continue
                sig = -returncode if returncode is not None and returncode < 0 else None
                expected = self._stopping or self._shutdown_requested is not None
                self.recorder.event(
                    KERNEL_EXITED,
                    exit_code=returncode,
                    signal=signal.Signals(sig).name if sig else None,
                    expected=expected,
                    cause=(
                        "stopped by widgetspy"
                        if self._stopping
                        else "shutdown_request"
                        if self._shutdown_requested is not None
                        else "died"
                    ),
                )
                if self.opts.owner and self._stopping:
                    return 0
                return exit_status(returncode)

    # ------------------------------------------------------------------ kernel

    def _make_manager(self) -> Any:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpec, NoSuchKernel
        from jupyter_core.paths import jupyter_runtime_dir

        opts = self.opts
        km = KernelManager(kernel_name=opts.kernel_name or "")
        if opts.kernel_argv:
            argv = list(opts.kernel_argv)
            if opts.front_connection_file:
                argv = [a.replace(opts.front_connection_file, "{connection_file}") for a in argv]
            km._kernel_spec = KernelSpec(
                argv=argv,
                display_name=opts.display_name or opts.kernel_name or argv[0],
                language=opts.language,
                interrupt_mode=opts.interrupt_mode,
                env={},
            )
        else:
            try:
                spec = km.kernel_spec
            except NoSuchKernel:
                from jupyter_client.kernelspec import KernelSpecManager

                names = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
                raise ShimError(f"no kernelspec named {opts.kernel_name!r} (available: {names})") from None
            if any(SHIM_MODULE in a for a in spec.argv):
                raise ShimError(f"kernelspec {opts.kernel_name!r} is itself a widgetspy wrapper; name the kernel it wraps")
        km.transport = "tcp"
        km.ip = "127.0.0.1"
        key = opts.front.get("key", "")
        km.session.key = key.encode() if isinstance(key, str) else key
        km.session.signature_scheme = opts.front.get("signature_scheme", "hmac-sha256")
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        km.connection_file = str(runtime / f"widgetspy-kernel-{uuid.uuid4().hex[:12]}.json")
        return km

    def _start_kernel(self) -> None:
        try:
            self.km.start_kernel(cwd=os.getcwd())
        except ShimError:
            raise
        except Exception as exc:  # jupyter_client raises many kinds here
            raise ShimError(f"cannot start kernel {self._kernel_label()}: {_one_line(exc)}") from None

    def _kernel_label(self) -> str:
        return repr(self.opts.kernel_name or (self.opts.kernel_argv or ["?"])[0])

    def _kernel_pid(self) -> int | None:
        proc = getattr(self.km.provisioner, "process", None)
        return getattr(proc, "pid", None)

    def _kernel_info(self) -> dict[str, Any]:
        """kernel_info_reply content, asked on the private ports."""
        kc = self.km.client()
        kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        deadline = time.monotonic() + self.opts.startup_timeout
        try:
            msg_id = kc.kernel_info()
            while True:
                if not self.km.is_alive():
                    rc = self.km.provisioner.process.poll()
                    raise ShimError(f"kernel {self._kernel_label()} died during start-up (exit code {rc})")
                if time.monotonic() > deadline:
                    raise ShimError(f"kernel {self._kernel_label()} did not answer kernel_info in {self.opts.startup_timeout:.0f} s")
                try:
                    reply = kc.get_shell_msg(timeout=0.5)
                except queue.Empty:
                    continue
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    return dict(reply.get("content") or {})
        finally:
            kc.stop_channels()

    def _watch_kernel(self) -> None:
        proc = self.km.provisioner.process

        def wait() -> None:
            self.events.put(("exit", proc.wait()))

        threading.Thread(target=wait, name="widgetspy-kernel-wait", daemon=True).start()

    def _restart_kernel(self, returncode: int | None) -> None:
        assert self.recorder is not None
        self._shutdown_requested = None
        try:
            self.km.restart_kernel(now=True)
            info = self._kernel_info()
        except Exception as exc:
            self.events.put(("exit", self.km.provisioner.process.poll() if self.km.has_kernel else returncode))
            self.recorder.event("restart_failed", error=_one_line(exc))
            return
        self.recorder.event(
            KERNEL_RESTARTED, pid=self._kernel_pid(), previous_exit_code=returncode, kernel=_kernel_fields(info)
        )
        self._watch_kernel()

    def _shutdown_kernel(self) -> None:
        try:
            self.km.shutdown_kernel(now=False)
        except Exception:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass

    def _watch_requests(self, records: list[Record]) -> None:
        """Remember a client's shutdown_request (restart or not)."""
        for rec in records:
            if (
                isinstance(rec, MessageRecord)
                and rec.direction is Direction.TO_KERNEL
                and rec.msg.msg_type == "shutdown_request"
            ):
                self._shutdown_requested = dict(rec.msg.content)

    # ------------------------------------------------------------------ session

    def _write_header(self, info: dict[str, Any]) -> None:
        spec = self.km.kernel_spec
        header = SessionHeader(
            format_version=FORMAT_VERSION,
            widgetspy_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            kernel={
                "name": self.opts.kernel_name or "",
                "display_name": spec.display_name,
                "language": spec.language,
                **_kernel_fields(info),
            },
            taps=["zmq"],
            # monotonic_t0: this recording's time origin on CLOCK_MONOTONIC (shared by all processes on
            # the machine), so a websocket tap recorded elsewhere can be merged on one time axis
            recorder={"mode": self.opts.mode, "pid": os.getpid(), "monotonic_t0": self.t0, **self.opts.extra_header},
        )
        try:
            writer = SessionWriter(self.opts.output, header, overwrite=self.opts.overwrite)
        except SessionWriteError as exc:
            raise ShimError(str(exc)) from None
        try:  # the kernel key, tokens, --redact and $WIDGETSPY_REDACT never reach the file
            redactor = Redactor.for_recording(self.opts.front.get("key"), self.opts.redact)
        except RedactionError as exc:
            writer.close()
            raise ShimError(str(exc)) from None
        self.recorder = Recorder(writer, self.clock, redactor)
        if self.on_recorder is not None:
            self.on_recorder(self.recorder)

    # ------------------------------------------------------------------ signals, teardown

    def _install_signal_handlers(self) -> dict[int, Any]:
        old = {}
        if threading.current_thread() is not threading.main_thread():
            return old
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, lambda s, _f: self.events.put(("signal", s)))
        return old

    def _teardown(self) -> None:
        if self.km is not None and self.km.has_kernel and self.km.is_alive():
            self._shutdown_kernel()
        if self.mitm is not None:
            self.mitm.stop()
            if self.mitm.capture_error is not None and self.recorder is not None:
                self.recorder.event("capture_error", error=_one_line(self.mitm.capture_error))
        if self.recorder is not None:
            self.recorder.close("kernel gone" if not self._stopping else "stopped")
        if self.km is not None:
            try:
                self.km.cleanup_resources()
            except Exception:
                pass


def _kernel_fields(info: dict[str, Any]) -> dict[str, Any]:
    lang = info.get("language_info") or {}
    out = {
        "implementation": info.get("implementation"),
        "implementation_version": info.get("implementation_version"),
        "protocol_version": info.get("protocol_version"),
        "language_version": lang.get("version"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# ---------------------------------------------------------------------- entry point


def default_recordings_dir() -> Path:
    env = os.environ.get("WIDGETSPY_RECORDINGS")
    if env:
        return Path(env)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "widgetspy" / "recordings"


def session_path_for(directory: Path, kernel_name: str, connection_file: str | None) -> Path:
    """One file per kernel start: <time>-<kernel>-<kernel id>-<pid>.jsonl (a restart
    reuses the connection file, so the pid keeps two starts apart)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kid = Path(connection_file).stem.removeprefix("kernel-")[:8] if connection_file else "kernel"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{kernel_name or 'kernel'}-{kid}")
    return directory / f"{stamp}-{safe}-{os.getpid()}.jsonl"


def load_connection_file(path: str) -> dict[str, Any]:
    try:
        with open(path) as fh:
            info = json.load(fh)
    except FileNotFoundError:
        raise ShimError(f"connection file {path} not found") from None
    except (OSError, ValueError) as exc:
        raise ShimError(f"cannot read connection file {path}: {_one_line(exc)}") from None
    missing = [k for k in ("ip", "key", *PORT_KEYS.values()) if k not in info]
    if missing:
        raise ShimError(f"connection file {path} lacks {', '.join(missing)}")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m widgetspy.proxy.shim", description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--connection-file", required=True)
    parser.add_argument("--kernel", help="kernelspec to start behind the proxy")
    parser.add_argument("--out-dir", help="recordings folder (default: $WIDGETSPY_RECORDINGS or the Jupyter data dir)")
    parser.add_argument("--mode", default="kernelspec", choices=["kernelspec", "provisioner"])
    parser.add_argument("--interrupt-mode", default="signal", choices=["signal", "message"])
    parser.add_argument("--language", default="")
    parser.add_argument("--display-name", default="")
    parser.add_argument("--kernel-id", default="", help="the server's kernel id (written into the header)")
    parser.add_argument("argv", nargs="*", help="the kernel command (after --)")
    args = parser.parse_args(argv)
    if not args.kernel and not args.argv:
        parser.error("give --kernel NAME or a kernel command after --")
    # Never let the kernel we start be wrapped again by our own provisioner.
    os.environ.pop("JUPYTER_DEFAULT_PROVISIONER_NAME", None)
    try:
        front = load_connection_file(args.connection_file)
        out_dir = Path(args.out_dir) if args.out_dir else default_recordings_dir()
        opts = ShimOptions(
            front=front,
            output=session_path_for(out_dir, args.kernel or front.get("kernel_name", ""), args.connection_file),
            kernel_name=args.kernel if not args.argv else (args.kernel or front.get("kernel_name")),
            kernel_argv=args.argv or None,
            front_connection_file=args.connection_file,
            interrupt_mode=args.interrupt_mode,
            language=args.language,
            display_name=args.display_name,
            mode=args.mode,
        )
        if args.kernel_id:
            opts.extra_header["kernel_id"] = args.kernel_id
        return KernelShim(opts).run()
    except ShimError as exc:
        print(f"widgetspy: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
