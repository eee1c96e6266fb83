"""`widgetspy merge`: one session per kernel from the tap files of a recording."""

from __future__ import annotations

from pathlib import Path

import click

from ..session import SessionReadError
from ..session.merge import MergeError
from .errors import Failure


@click.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(), required=True, help="Folder for the merged sessions.")
def merge(paths: tuple[str, ...], output: str) -> None:
    """Merge ZMQ-tap and websocket-tap files (or folders of them) into one session per kernel.

    `widgetspy record --web -- jupyter lab` does this when it stops; run it by
    hand after a recording that was killed, or to combine a `--web --upstream`
    recording with a `record -- jupyter lab` one. Parts are matched by the kernel
    id in their headers and put on one time axis.
    """
    from .record_web import merge_dir

    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        merged = merge_dir(files, out)
    except (SessionReadError, MergeError) as exc:
        raise Failure(str(exc)) from None
    if not merged:
        raise Failure("no tap files with a kernel id among the given paths")
    for path, n, header in merged:
        click.echo(f"{path}  ({n} records, taps: {', '.join(header.taps)})")
