"""`widgetspy show FILE`: what a session holds, at a glance."""

from __future__ import annotations

import click
from rich.console import Console

from .console import make_console
from rich.table import Table

from ..message import Channel, Direction
from ..session import SessionReadError, open_session
from ..summary import SessionSummary, summarize
from .errors import Failure


def load_summary(path: str) -> tuple[SessionSummary, list[str]]:
    try:
        sf = open_session(path)
        summary = summarize(sf.header, sf)
    except SessionReadError as exc:
        raise Failure(str(exc)) from None
    return summary, sf.warnings


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--top", default=15, show_default=True, help="How many message types to list.")
def show(file: str, top: int) -> None:
    """Summarize a session: kernel, duration, traffic, widget models, errors."""
    summary, warnings = load_summary(file)
    console = make_console()
    render(console, file, summary, top)
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def render(console: Console, path: str, s: SessionSummary, top: int = 15) -> None:
    h = s.header
    k = h.kernel
    impl = " ".join(str(x) for x in (k.get("implementation"), k.get("implementation_version")) if x)
    console.print(f"[bold]session[/]  {path}  (format {h.format_version}, widgetspy {h.widgetspy_version}, {h.created})")
    console.print(
        f"[bold]kernel[/]   {k.get('name') or '?'} ({k.get('display_name', '')}) {impl}"
        f"{', protocol ' + k['protocol_version'] if k.get('protocol_version') else ''}"
        f"  · taps: {', '.join(h.taps)} · recorded via {h.recorder.get('mode', '?')}"
    )
    console.print(
        f"[bold]traffic[/]  {s.duration:.2f} s · {s.messages} messages ({_size(s.bytes)}) · "
        f"{s.buffers} binary buffers ({_size(s.buffer_bytes)}) · {len(s.clients)} client(s) · "
        f"{len(s.unparsed)} unparsed frame(s)"
    )
    if len(h.taps) > 1 or len(s.by_tap) > 1:
        # each message is counted once above (the ZMQ copy when there is one); here every copy, per tap
        per_tap = ", ".join(f"{tap} {s.by_tap[tap]}" for tap in [*h.taps, *sorted(set(s.by_tap) - set(h.taps))])
        console.print(f"[bold]taps[/]     message copies per tap: {per_tap} · {s.on_both} message(s) seen on both")

    chans = Table(title="messages by channel", title_justify="left")
    chans.add_column("channel")
    chans.add_column("to kernel", justify="right")
    chans.add_column("to front-end", justify="right")
    for ch in Channel:
        a, b = s.by_channel[(ch, Direction.TO_KERNEL)], s.by_channel[(ch, Direction.TO_FRONTEND)]
        if a or b:
            chans.add_row(ch.value, str(a), str(b))
    console.print(chans)

    types = Table(title=f"message types (top {top})", title_justify="left")
    types.add_column("msg_type")
    types.add_column("to kernel", justify="right")
    types.add_column("to front-end", justify="right")
    totals: dict[str, int] = {}
    for (t, _d), n in s.by_type.items():
        totals[t] = totals.get(t, 0) + n
    for t, _n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        types.add_row(t, str(s.by_type[(t, Direction.TO_KERNEL)]), str(s.by_type[(t, Direction.TO_FRONTEND)]))
    console.print(types)

    if s.models:
        models = Table(title=f"widget models ({len(s.models)} opened, "
                       f"{sum(1 for m in s.models.values() if m.closed_seq is not None)} closed)", title_justify="left")
        for col in ("comm id", "model", "module", "opened", "updates", "closed"):
            models.add_column(col, justify="right" if col == "updates" else "left")
        for m in s.models.values():
            closed = f"{m.closed_by} @{m.closed_seq}" if m.closed_seq is not None else "-"
            module = m.model_module.removeprefix("@jupyter-widgets/")
            models.add_row(m.comm_id[:8], m.model_name, module, f"{m.opened_by} @{m.opened_seq}", str(m.updates), closed)
        console.print(models)
    other = {t: n for t, n in s.comm_targets.items() if t != "jupyter.widget"}
    if other:
        console.print("other comm targets: " + ", ".join(f"{t} ×{n}" for t, n in sorted(other.items(), key=str)))

    if s.events:
        ev = Table(title="events", title_justify="left")
        for col in ("seq", "t (s)", "event", "details"):
            ev.add_column(col)
        for e in s.events:
            details = " ".join(f"{k}={v}" for k, v in e.data.items() if v is not None and k != "kernel")
            ev.add_row(str(e.seq), f"{e.t:.3f}", e.event, details)
        console.print(ev)
    if s.unparsed:
        console.print(f"[red]{len(s.unparsed)} unparsed frame(s)[/], first:")
        for u in s.unparsed[:5]:
            console.print(f"  seq {u.seq} {u.channel.value} {u.direction.value}: {u.reason}  [{u.preview}]")
