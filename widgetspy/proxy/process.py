"""`widgetspy record --kernel` as a child process: start it, know when it is ready,
stop it. Used by the demo, the tests and the pytest plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _stop_with_parent() -> None:
    """In the child: get SIGTERM (a clean stop for the recorder) when the process
    that started it dies, even by SIGKILL, so no recorder and kernel are left
    behind. Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RecorderStartError(Exception):
    """The recorder exited before it was ready; str() is its one-line error."""


class RecorderProcess:
    def __init__(
        self,
        output: str | os.PathLike[str],
        kernel: str = "python3",
        connection_file: str | os.PathLike[str] | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        log: str | os.PathLike[str] | None = None,
    ):
        """`log`: detach the recorder so it can outlive us: its own session, its
        output into this file instead of pipes to us."""
        self.output = Path(output)
        self.kernel = kernel
        self._tmp = None
        if connection_file is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="widgetspy-")
            connection_file = Path(self._tmp.name) / "kernel.json"
        self.connection_file = Path(connection_file)
        self.extra_args = extra_args or []
        self.env = env
        self.log = Path(log) if log else None
        self.proc: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self.stderr = ""

    def start(self) -> "RecorderProcess":
        """Start and wait until the connection file is written (the proxy is up)."""
        argv = [sys.executable, "-m", "widgetspy", "record", "--kernel", self.kernel, "-o", str(self.output),
                "--force", "--connection-file", str(self.connection_file), *self.extra_args]
        if self.log is not None:
            return self._start_detached(argv)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
                                     preexec_fn=_stop_with_parent)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)
            if "connection file:" in line:
                break
        else:
            self.proc.wait()
            self.stderr = self.proc.stderr.read()
            raise RecorderStartError(self.stderr.strip() or f"widgetspy record exited with {self.proc.returncode}")
        # keep draining its output so it never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _start_detached(self, argv: list[str]) -> "RecorderProcess":
        assert self.log is not None
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, text=True, env=self.env,
                                         start_new_session=True)
        # Its only way to tell us it is ready is the log: read it as it grows.
        while "connection file:" not in self.log.read_text():
            if self.proc.poll() is not None:
                lines = [l for l in self.log.read_text().splitlines() if l.startswith("widgetspy:")]
                raise RecorderStartError(lines[-1].removeprefix("widgetspy: error: ") if lines else
                                         f"widgetspy record exited with {self.proc.returncode}")
            time.sleep(0.02)
        self.stdout_lines = self.log.read_text().splitlines(keepends=True)
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self.proc.stderr is not None
        err = self.proc.stderr
        threading.Thread(target=lambda: setattr(self, "stderr", err.read()), daemon=True).start()
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        """Ctrl-C: stop the kernel and the recording; returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self._tmp is not None and self.proc.poll() is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> "RecorderProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
