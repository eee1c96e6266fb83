"""`widgetspy record --web`: the browser's websocket tap, with or without a server to start."""

from __future__ import annotations

import datetime as _dt
import signal
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from ..proxy.provisioner import PROVISIONER_NAME
from ..proxy.web import (
    WebError,
    WsProxy,
    command_sets_token,
    free_port,
    new_token,
    parse_listen,
    recording_env,
    server_argv,
    wait_http,
)
from ..session.merge import group_parts, merge_files
from .errors import Failure

TAPS_DIR = "taps"


def record_web(command: list[str], upstream: str | None, listen: str | None, out_dir: Path) -> int:
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise Failure(f"cannot create {out_dir}: {exc.strerror}") from None
    try:
        if not command:
            host, port = parse_listen(listen or "127.0.0.1:8889")
            return _proxy_only(upstream or "http://127.0.0.1:8888", (host, port), out_dir)
        if upstream:
            raise Failure("--upstream is for a server that already runs; with a COMMAND widgetspy starts it")
        host, port = parse_listen(listen) if listen else ("127.0.0.1", 0)
        return _with_server(command, (host, port), out_dir)
    except WebError as exc:
        raise Failure(str(exc)) from None


class _Stop:
    """SIGTERM/SIGHUP/SIGINT: stop the children in order, then merge (instead of dying at once)."""

    def __init__(self) -> None:
        self.requested = 0
        self.old: dict[int, Any] = {}

    def __enter__(self) -> "_Stop":
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self.old[sig] = signal.signal(sig, self._on)
        return self

    def _on(self, signum: int, _frame: Any) -> None:
        self.requested = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _wait(proc: subprocess.Popen, stop: _Stop) -> int:
    forwarded = 0
    while True:
        try:
            return proc.wait(0.2)
        except subprocess.TimeoutExpired:
            if stop.requested and forwarded != stop.requested:
                forwarded = stop.requested
                proc.send_signal(signal.SIGTERM)
        except KeyboardInterrupt:  # the server got the Ctrl-C too (same terminal): let it decide
            continue


def _proxy_only(upstream: str, listen: tuple[str, int], out_dir: Path) -> int:
    proxy = WsProxy(upstream, out_dir, listen)
    with _Stop() as stop:
        proxy.start()
        click.echo(f"widgetspy: recording kernel websockets between the browser and {upstream} into {out_dir}/")
        click.echo(f"  open:  {proxy.url}/  (add ?token=... if the server wants one)")
        click.echo("  stop with Ctrl-C")
        try:
            code = _wait(proxy.proc, stop)  # type: ignore[arg-type]
        finally:
            proxy.stop()
    click.echo(f"widgetspy: proxy stopped (status {code})")
    for p in sorted(out_dir.glob("*-ws-*.jsonl")):
        click.echo(f"  {p}")
    return 0 if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else code


def _with_server(command: list[str], listen: tuple[str, int], out_dir: Path) -> int:
    if not entry_points(group="jupyter_client.kernel_provisioners", name=PROVISIONER_NAME):
        raise Failure(f"the {PROVISIONER_NAME} entry point is not installed here (pip install widgetspy)")
    taps = out_dir / TAPS_DIR
    taps.mkdir(parents=True, exist_ok=True, mode=0o700)
    before = set(taps.glob("*.jsonl"))
    server_port = free_port()
    token = None if command_sets_token(command) else new_token()
    argv = server_argv(command, server_port, token)
    upstream = f"http://127.0.0.1:{server_port}"
    proxy = WsProxy(upstream, taps, listen)
    code = 1
    with _Stop() as stop:
        proxy.start()
        try:
            server = subprocess.Popen(argv, env=recording_env(taps))
        except OSError as exc:
            proxy.stop()
            raise Failure(f"cannot run {command[0]}: {exc.strerror}") from None
        try:
            wait_http(f"{upstream}/api/status" if token is None else f"{upstream}/api", 120, server, command[0])
            query = f"?token={token}" if token else ""
            click.echo(f"widgetspy: {command[0]} on {upstream}, recorded on both taps into {out_dir}/")
            click.echo(f"  open:  {proxy.url}/{query}")
            click.echo("  stop with Ctrl-C (twice for Jupyter's prompt) or SIGTERM", nl=True)
            code = _wait(server, stop)
        except WebError as exc:
            click.echo(f"widgetspy: {exc}", err=True)
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            proxy.stop()
    merged = merge_dir(sorted(set(taps.glob("*.jsonl")) - before), out_dir)
    click.echo(f"widgetspy: {len(merged)} session(s) recorded (one per kernel)")
    for path, n, header in merged:
        click.echo(f"  {path}  ({n} records, taps: {', '.join(header.taps)})")
    return code if code >= 0 else 128 - code


def merge_dir(parts: list[Path], out_dir: Path) -> list[tuple[Path, int, Any]]:
    """One merged session per kernel from its tap files."""
    out = []
    for kid, paths in group_parts(parts).items():
        stamp = _dt.datetime.fromtimestamp(min(p.stat().st_mtime for p in paths)).strftime("%Y%m%d-%H%M%S")
        name = _kernel_name(paths)
        target = out_dir / f"{stamp}-{name}-{kid[:8]}.jsonl"
        n = 1
        while target.exists():
            n += 1
            target = out_dir / f"{stamp}-{name}-{kid[:8]}-{n}.jsonl"
        header, count, _warnings = merge_files(paths, target)
        out.append((target, count, header))
    return out


def _kernel_name(paths: list[Path]) -> str:
    from ..session import open_session

    for p in paths:
        sf = open_session(p)
        sf.close()
        name = sf.header.kernel.get("name")
        if name:
            return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    return "kernel"
