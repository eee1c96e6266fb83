"""`widgetspy record`: a kernel behind the proxy, or a command whose kernels all are."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import uuid
from importlib.metadata import entry_points
from pathlib import Path

import click

from ..proxy.provisioner import PROVISIONER_NAME
from ..proxy.shim import KernelShim, ShimError, ShimOptions
from .errors import Failure


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--kernel", "kernel_name", default=None, help="Kernelspec to start behind the proxy [python3].")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Session file (with --kernel) or folder (with a COMMAND) [session-<time>.jsonl / widgetspy-recordings].",
)
@click.option("--force", is_flag=True, help="Overwrite an existing session file.")
@click.option("--connection-file", type=click.Path(), help="Where to write the connection file clients use.")
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address clients connect to.")
@click.option("--check", "check", is_flag=True, help="Check the traffic while recording; print findings to stderr.")
@click.option("--web", is_flag=True, help="Also record the browser's kernel websockets through a mitmproxy reverse proxy.")
@click.option("--upstream", default=None, metavar="URL", help="With --web and no COMMAND: the Jupyter server [http://127.0.0.1:8888].")
@click.option("--listen", default=None, metavar="HOST:PORT", help="With --web: where the proxy listens [127.0.0.1:8889, or a free port with a COMMAND].")
@click.option("--redact", multiple=True, metavar="REGEX",
              help="Replace matches with [redacted] before anything is written (repeatable; the kernel key "
                   "and token=... are always redacted).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def record(
    kernel_name: str | None, output: str | None, force: bool, connection_file: str | None, ip: str, check: bool,
    command: tuple[str, ...], web: bool = False, upstream: str | None = None, listen: str | None = None,
    redact: tuple[str, ...] = (),
) -> None:
    """Record every message between front-ends and a kernel.

    \b
    widgetspy record --kernel python3 -o session.jsonl
        start a kernel behind the proxy; attach with the printed
        `jupyter console --existing ...` line; Ctrl-C stops.
    widgetspy record -o DIR -- jupyter lab
        run a command; every kernel it starts is recorded into DIR,
        one session file per kernel start.
    widgetspy record --web -o DIR -- jupyter lab
        also put a mitmproxy reverse proxy in front of the server and record
        the browser's kernel websockets; open the printed URL. One session per
        kernel with both taps (zmq and ws) lands in DIR.
    widgetspy record --web --upstream http://127.0.0.1:8888 -o DIR
        only the websocket tap, in front of a running server.
    """
    if redact:  # checked here (one-line error); the recorder gets them through $WIDGETSPY_REDACT in every mode
        from ..proxy.redact import ENV_VAR, RedactionError, Redactor

        try:
            Redactor(redact)
        except RedactionError as exc:
            raise Failure(str(exc)) from None
        os.environ[ENV_VAR] = "\n".join([*filter(None, os.environ.get(ENV_VAR, "").splitlines()), *redact])
    if web or upstream or listen:
        if not web:
            raise Failure("--upstream and --listen go with --web")
        if kernel_name or connection_file or check:
            raise Failure("--web records a Jupyter server: --kernel, --connection-file and --check do not apply")
        from .record_web import record_web

        raise SystemExit(record_web(list(command), upstream, listen, Path(output or "widgetspy-recordings")))
    if command:
        if kernel_name or connection_file:
            raise Failure("--kernel and --connection-file go with a single kernel, not with a COMMAND")
        if check:
            raise Failure("--check goes with a single kernel (--kernel), not with a COMMAND")
        raise SystemExit(_record_command(list(command), Path(output or "widgetspy-recordings")))
    raise SystemExit(_record_kernel(kernel_name or "python3", output, force, connection_file, ip, check))


def _record_kernel(
    kernel_name: str, output: str | None, force: bool, connection_file: str | None, ip: str, check: bool = False
) -> int:
    from jupyter_client.connect import write_connection_file
    from jupyter_core.paths import jupyter_runtime_dir

    out = Path(output or f"session-{_dt.datetime.now():%Y%m%d-%H%M%S}.jsonl")
    if out.exists() and not force:
        raise Failure(f"{out} already exists (use --force to overwrite)")
    if connection_file is None:
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        connection_file = str(runtime / f"widgetspy-{uuid.uuid4().hex[:12]}.json")
    front = {
        "ip": ip,
        "transport": "tcp",
        "key": str(uuid.uuid4()),
        "signature_scheme": "hmac-sha256",
        "kernel_name": kernel_name,
        **{f"{c}_port": 0 for c in ("shell", "iopub", "stdin", "control", "hb")},
    }
    written: list[str] = []

    def on_ready(info: dict) -> None:
        write_connection_file(
            connection_file,
            ip=info["ip"],
            key=info["key"].encode(),
            transport="tcp",
            signature_scheme=info["signature_scheme"],
            kernel_name=kernel_name,
            **{k: info[k] for k in ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")},
        )
        written.append(connection_file)
        click.echo(f"widgetspy: recording kernel {kernel_name} into {out}")
        click.echo(f"  connection file: {connection_file}")
        click.echo(f"  attach with:     jupyter console --existing {connection_file}")
        click.echo("  stop with Ctrl-C (or shut the kernel down from a client)", nl=True)

    shim = KernelShim(ShimOptions(front=front, output=out, overwrite=force, kernel_name=kernel_name, owner=True), on_ready)
    live = _live_checker(shim) if check else None
    try:
        code = shim.run()
    except ShimError as exc:
        raise Failure(str(exc)) from None
    finally:
        for path in written:
            try:
                os.unlink(path)
            except OSError:
                pass
    rec = shim.recorder
    if rec is not None:
        click.echo(f"widgetspy: {rec.capture.message_count} messages recorded in {out}")
    if live is not None:
        from ..inspectors.report import counts

        c = counts(live.finish())
        click.echo(f"widgetspy check: {c['error']} error(s), {c['warning']} warning(s), {c['info']} info", err=True)
    return code


def _live_checker(shim: KernelShim):  # -> LiveChecker
    """Feed every record the recorder writes to the inspectors; one stderr line per finding."""
    from ..inspectors import Checker
    from ..inspectors.live import LiveChecker

    live = LiveChecker(Checker(), lambda f: click.echo(f"widgetspy check: {f.one_line()}", err=True))
    shim.on_recorder = lambda recorder: recorder.listeners.append(live)
    return live


def _record_command(command: list[str], out_dir: Path) -> int:
    if not entry_points(group="jupyter_client.kernel_provisioners", name=PROVISIONER_NAME):
        raise Failure(f"the {PROVISIONER_NAME} entry point is not installed here (pip install widgetspy)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise Failure(f"cannot create {out_dir}: {exc.strerror}") from None
    env = dict(os.environ)
    env["JUPYTER_DEFAULT_PROVISIONER_NAME"] = PROVISIONER_NAME
    env["WIDGETSPY_RECORDINGS"] = str(out_dir.resolve())
    before = set(out_dir.glob("*.jsonl"))
    click.echo(f"widgetspy: every kernel {command[0]} starts is recorded into {out_dir}/")
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        raise Failure(f"cannot run {command[0]}: {exc.strerror}") from None
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # the command got the Ctrl-C too; let it finish
            continue
    new = sorted(set(out_dir.glob("*.jsonl")) - before)
    click.echo(f"widgetspy: {len(new)} session(s) recorded")
    for path in new:
        click.echo(f"  {path}")
    return code if code >= 0 else 128 - code
