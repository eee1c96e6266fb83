"""`widgetspy replay FILE`: play the front-end's side again, report divergences."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..replay.compare import divergence_lines
from ..replay.engine import PACES
from ..replay.junit import error_junit, replay_junit
from ..replay.runner import ReplayError, ReplayOptions, ReplayResult, run_replay
from .console import make_console
from .errors import Failure


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--kernel", help="Kernelspec to replay against [the recorded one].")
@click.option("--pace", type=click.Choice(PACES), default="idle", show_default=True,
              help="idle: wait for what the front-end had seen; recorded: keep the recorded gaps; fast: no waiting.")
@click.option("--ignore", multiple=True, metavar="PATH",
              help="Leave out of the comparison: state.KEY, re:REGEX (output text), or a part "
                   "(stream, display, error, reply, stdin, echo, custom, close, open, state). Repeatable.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the replayed run as a session file.")
@click.option("--until", type=int, metavar="SEQ", help="Stop just before this recorded seq.")
@click.option("--keep-kernel", is_flag=True, help="Leave the kernel running (with --until: the state before SEQ).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the kernel.")
@click.option("--include-debug", is_flag=True, help="Also replay debugger messages.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--junit", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the result as JUnit XML (one case per replayed request, one for new findings).")
def replay(file: str, kernel: str | None, pace: str, ignore: tuple[str, ...], out: str | None, until: int | None,
           keep_kernel: bool, timeout: float, include_debug: bool, quiet: bool, junit: str | None = None) -> None:
    """Replay a session's front-end messages against a fresh kernel and report
    where the kernel now behaves differently. Exit 0 identical, 1 diverged, 2 error."""
    console = make_console()
    opts = ReplayOptions(kernel=kernel, pace=pace, ignore=list(ignore), out=Path(out) if out else None,
                         until=until, keep_kernel=keep_kernel, timeout=timeout, include_debug=include_debug)
    if out and Path(out).exists():
        raise Failure(f"{out} already exists")
    progress = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.description}"), console=console, transient=True, disable=quiet)
    try:
        with progress:
            task = progress.add_task("", total=None)

            def on_step(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what[:50])

            result = run_replay(Path(file), opts, on_step)
    except ReplayError as exc:
        if junit:
            _write(junit, error_junit(file, str(exc)))
        raise Failure(str(exc)) from None
    report(console, result)
    if junit:
        _write(junit, replay_junit(result))
    raise SystemExit(0 if result.identical else 1)


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror}") from None


def report(console, r: ReplayResult) -> None:  # type: ignore[no-untyped-def]
    print_ = console.print

    def say(text: str, markup: bool = False) -> None:
        # one report line per line (grep-able, never wrapped); the data in it is
        # never read as rich markup ("[patched]" would vanish)
        print_(text, soft_wrap=True, markup=markup, highlight=False)

    skipped = f" ({len(r.plan.skipped)} skipped: {r.plan.skipped_summary()})" if r.plan.skipped else ""
    say(f"replayed {r.sent} front-end messages of {r.path} on a fresh {r.kernel} kernel{skipped}")
    for w in r.warnings:
        say(f"[yellow]warning:[/] {escape(w)}", markup=True)
    for note in r.notes:
        say(f"note: {note}")
    if r.identical:
        say(f"[green]identical[/]: replies, outputs, comms and widget state match ({r.elapsed:.1f} s)", markup=True)
    else:
        first = r.divergences[0]
        say(f"[red bold]DIVERGED[/] at seq {first.seq}, in {escape(first.request)} @{first.request_seq}", markup=True)
        for line in divergence_lines(r.divergences, 50):
            say(line)
    if r.new_findings:
        say(f"{len(r.new_findings)} inspector finding(s) in the replayed run that the recording did not have:")
        for f in r.new_findings[:20]:
            say(f"  {f.one_line()}")
    if r.out:
        say(f"replayed run written to {r.out}")
    if r.kept is not None:
        cf = r.kept.connection_file
        say(f"kernel kept running (recorder pid {r.kept.pid}, still recording into {r.kept.output})")
        say(f"  connection file: {cf}")
        say(f"  attach with:     jupyter console --existing {cf}")
        say(f"  stop with:       kill -INT {r.kept.pid}")
