"""Running the websocket tap: mitmdump with widgetspy's addon, and optionally a
Jupyter server behind it whose kernels the provisioner records on the ZMQ side.

Used by `widgetspy record --web`, the browser tests and the benchmark. All the
I/O of `--web` lives here; the recording itself is `ws_addon.py` (in the
mitmdump child) and the shim (in each kernel's process).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Sequence

from .provisioner import PROVISIONER_NAME

ADDON = Path(__file__).with_name("ws_addon.py")
MITMDUMP = "import sys; from mitmproxy.tools.main import mitmdump; sys.exit(mitmdump())"


class WebError(Exception):
    """The proxy or the server could not start; str() is one line."""


def free_port(host: str = "127.0.0.1", port: int = 0) -> int:
    """A port this process could listen on now: any free one (`port` 0), or `port`
    itself, WebError when it is taken."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
            s.bind((host, port))
            return s.getsockname()[1]
    except OSError as exc:
        raise WebError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise WebError(f"--listen wants HOST:PORT, not {text!r}")
    return host or "127.0.0.1", int(port)


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise WebError(f"{what or 'the process'} exited with status {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise WebError(f"{what or 'nothing'} listening on {host}:{port} after {timeout:.0f} s")


def mitmdump_argv(upstream: str, host: str, port: int, confdir: str, out_dir: str | None, *, addon: bool = True) -> list[str]:
    """The mitmdump command line of the websocket tap (`addon=False`: plain mitmdump, for benchmarks)."""
    argv = [
        sys.executable, "-c", MITMDUMP,
        "--mode", f"reverse:{upstream}",
        "--listen-host", host, "-p", str(port),
        "--set", "keep_host_header=true",  # or jupyter_server refuses the websocket as cross-origin (403)
        "--set", "connection_strategy=lazy",
        "--set", f"confdir={confdir}",
        "--set", "termlog_verbosity=error",
        "--set", "flow_detail=0",
        "-q",
    ]
    if addon:
        argv += ["-s", str(ADDON), "--set", f"widgetspy_upstream={upstream}"]
        if out_dir:
            argv += ["--set", f"widgetspy_out={out_dir}"]
    return argv


class WsProxy:
    """mitmdump with the widgetspy addon, as a child process."""

    def __init__(self, upstream: str, out_dir: str | os.PathLike[str] | None, listen: tuple[str, int] = ("127.0.0.1", 0),
                 *, addon: bool = True, log: str | os.PathLike[str] | None = None):
        self.upstream = upstream.rstrip("/")
        self.out_dir = str(out_dir) if out_dir is not None else None
        self.host, self.port = listen
        self.addon = addon
        self.log = log
        self.proc: subprocess.Popen | None = None
        self._confdir = tempfile.TemporaryDirectory(prefix="widgetspy-mitm-")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "WsProxy":
        # checked first even when given: a port someone else listens on would answer the readiness check
        # below in mitmdump's place
        self.port = free_port(self.host, self.port)
        argv = mitmdump_argv(self.upstream, self.host, self.port, self._confdir.name, self.out_dir, addon=self.addon)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT if self.log else None,
                                         start_new_session=True)
        except OSError as exc:
            raise WebError(f"cannot run mitmdump: {exc.strerror}") from None
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        wait_port(self.host, self.port, timeout, self.proc, "mitmdump")
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (mitmdump runs the addon's done(), which closes the sessions) and wait."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._confdir.cleanup()
        return self.proc.returncode

    def __enter__(self) -> "WsProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_argv(command: Sequence[str], port: int, token: str | None) -> list[str]:
    """The Jupyter server command with our port (and a token, unless the command sets one)."""
    argv = list(command)
    argv += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             "--ServerApp.open_browser=False"]
    if token is not None:
        argv.append(f"--IdentityProvider.token={token}")
    return argv


def command_sets_token(command: Sequence[str]) -> bool:
    return any("token" in a.lower() or "password" in a.lower() for a in command)


def new_token() -> str:
    return secrets.token_hex(24)


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, what: str = "the server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise WebError(f"{what} exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.1)
    raise WebError(f"{what} did not answer {url} within {timeout:.0f} s")


def recording_env(taps_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["JUPYTER_DEFAULT_PROVISIONER_NAME"] = PROVISIONER_NAME
    env["WIDGETSPY_RECORDINGS"] = str(taps_dir.resolve())
    return env
