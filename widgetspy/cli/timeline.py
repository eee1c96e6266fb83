"""`widgetspy timeline FILE`: one line per widget state change."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..session import SessionReadError, open_session
from ..session.taps import prefer_tap
from ..timeline import MISSING, Change, ChangeKind, Model, Side, Timeline, change_to_json
from .console import make_console
from .errors import Failure

SIDES = click.Choice([s.value for s in Side])


def load_timeline(path: str) -> tuple[Timeline, list[str]]:
    """Read a session file into a Timeline; bad input is a one-line Failure."""
    timeline = Timeline()
    try:
        sf = open_session(path)
        for rec in prefer_tap(sf, sf.header.taps):  # both taps: the ZMQ copy of each message
            timeline.feed(rec)
    except SessionReadError as exc:
        raise Failure(str(exc)) from None
    return timeline, sf.warnings


def pick_model(timeline: Timeline, model_id: str) -> Model:
    """A model by id or by a unique id prefix (as `models` prints them)."""
    model = timeline.model(model_id)
    if model is not None:
        return model
    found = {m.comm_id: m for m in timeline.models if m.comm_id.startswith(model_id)}
    if len(found) == 1:
        return next(iter(found.values()))
    if found:
        raise Failure(f"model id {model_id!r} is ambiguous: {', '.join(sorted(found)[:5])}")
    raise Failure(f"no widget model {model_id!r} in this session (see `widgetspy models`)")


def short_value(value: Any, width: int = 32) -> str:
    if value is MISSING:
        return "∅"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_keys(change: Change, only: str | None = None) -> str:
    if change.kind is ChangeKind.CLOSE:
        return "closed" + (f" ({change.note})" if change.note and change.note != "kernel processing" else "")
    keys = [kc for kc in change.keys if only is None or kc.key == only]
    parts = []
    if change.kind in (ChangeKind.OPEN, ChangeKind.RESYNC) and only is None:
        present = sum(1 for kc in keys if kc.new is not MISSING)
        keys = [kc for kc in keys if kc.changed] if change.kind is ChangeKind.RESYNC else []
        head = f"full state, {present} keys"
        if change.kind is ChangeKind.RESYNC:
            head += f", {len(keys)} changed" + (":" if keys else "")
        parts.append(head)
    for kc in keys:
        if kc.changed:
            parts.append(f"{kc.key}: {short_value(kc.old)} → {short_value(kc.new)}")
        else:
            parts.append(f"{kc.key}: {short_value(kc.new)} (same)")
    if change.ignored:
        parts.append(f"ignored by the front-end (older echo): {', '.join(change.ignored)}")
    return "; ".join(parts) if parts else "(no keys)"


@click.command("timeline")
@click.argument("file", type=click.Path())
@click.option("--model", "model_id", metavar="ID", help="Only this model (id or unique id prefix).")
@click.option("--name", metavar="CLASS", help="Only models of this class (IntSlider or IntSliderModel).")
@click.option("--key", metavar="KEY", help="Only changes that set this state key.")
@click.option("--since", type=int, metavar="SEQ", help="From this seq on (inclusive).")
@click.option("--until", type=int, metavar="SEQ", help="Up to this seq (inclusive).")
@click.option("--side", type=SIDES, help="Only changes of the kernel's or the front-end's view.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one change per line.")
def timeline(file: str, model_id: str | None, name: str | None, key: str | None, since: int | None,
             until: int | None, side: str | None, as_json: bool) -> None:
    """Every change of widget model state: seq, time, side, keys old → new, cause."""
    if model_id and name:
        raise Failure("use --model or --name, not both")
    tl, warnings = load_timeline(file)
    if model_id:
        model_id = pick_model(tl, model_id).comm_id
    if name and not tl.find(name):
        known = sorted({m.class_name for m in tl.models})
        raise Failure(f"no {name} model in this session (classes: {', '.join(known) or 'none'})")
    changes = tl.changes(model_id=model_id, name=name, key=key, since=since, until=until,
                         side=Side(side) if side else None)
    names = {m.comm_id: m.model_name for m in tl.models}
    if as_json:
        for ch in changes:
            click.echo(json.dumps(change_to_json(ch, names.get(ch.model_id)), ensure_ascii=False))
        for w in warnings:
            click.echo(f"widgetspy: warning: {w}", err=True)
        return
    console = make_console()
    table = Table(title=f"{len(changes)} change(s) in {file}", title_justify="left")
    for col, just, wrap in (("seq", "right", False), ("t (s)", "right", False), ("side", "left", False),
                            ("dir", "left", False), ("model", "left", False), ("kind", "left", False),
                            ("keys: old → new", "left", True), ("cause", "left", True)):
        table.add_column(col, justify=just, no_wrap=not wrap, overflow="fold", ratio=2 if wrap else None)
    for ch in changes:
        sides = "+".join(s.short for s in ch.sides)
        seq = str(ch.seq) if ch.seq == ch.msg_seq else f"{ch.seq}←{ch.msg_seq}"
        model = f"{ch.model_id[:8]} {(names.get(ch.model_id) or '?').removesuffix('Model')}"
        cause = ch.cause.describe(40) if ch.cause else "-"
        if ch.note and ch.note != "kernel processing":
            cause += f" ({ch.note})"
        table.add_row(seq, f"{ch.t:.3f}", sides, ch.direction.arrow, model, ch.kind.value.replace("_update", ""),
                      escape(describe_keys(ch, key)), escape(cause))
    console.print(table)
    for w in warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
