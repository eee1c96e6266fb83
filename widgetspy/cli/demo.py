"""`widgetspy demo`: record a real widget session and show it."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from .console import make_console

from .errors import Failure
from .show import load_summary, render


@click.command()
@click.option("-o", "--output", default="recordings/demo.jsonl", show_default=True, type=click.Path())
@click.option("--kernel", default="python3", show_default=True)
def demo(output: str, kernel: str) -> None:
    """Record a scripted widget session on a real kernel, then `show` it."""
    from ..demo import run_demo
    from ..proxy.process import RecorderStartError

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    console = make_console()
    console.print(f"[bold]widgetspy demo[/]: recording a widget session on a real {kernel} kernel into {out}")
    try:
        code = run_demo(out, kernel, say=lambda s: console.print(f"  · {s}"))
    except RecorderStartError as exc:
        raise Failure(str(exc)) from None
    if code != 0:
        raise Failure(f"the recorder exited with status {code}")
    console.print(f"\n$ widgetspy show {out}")
    summary, _ = load_summary(str(out))
    render(console, str(out), summary)
