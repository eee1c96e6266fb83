"""`widgetspy state FILE`: the widget state document at a point of the session."""

from __future__ import annotations

import json

import click

from ..timeline import Side, state_document, validation_errors
from .errors import Failure
from .timeline import SIDES, load_timeline, pick_model


@click.command("state")
@click.argument("file", type=click.Path())
@click.option("--at", "at", type=int, metavar="SEQ",
              help="Right after this record (default: the end, before the kernel exited).")
@click.option("--model", "model_id", metavar="ID", help="Only this model (id or unique id prefix).")
@click.option("--side", type=SIDES, default="kernel", show_default=True,
              help="Whose view: the kernel's or the front-end's.")
@click.option("--include-closed", is_flag=True, help="Also models closed by then, with their last state.")
@click.option("--compact", is_flag=True, help="One line of JSON instead of indented.")
def state(file: str, at: int | None, model_id: str | None, side: str, include_closed: bool, compact: bool) -> None:
    """Print application/vnd.jupyter.widget-state+json (format 2.0) as one side saw it."""
    tl, warnings = load_timeline(file)
    if at is not None and at < 0:
        raise Failure(f"--at {at}: a seq is >= 0")
    point = tl.final_seq() if at is None else at
    states = tl.states(at=point, side=Side(side), include_closed=include_closed or model_id is not None)
    if model_id:
        wanted = pick_model(tl, model_id).comm_id
        if wanted not in states:
            raise Failure(f"model {wanted} is not known to the {side} side at seq {point}")
        states = {wanted: states[wanted]}
    doc = state_document({mid: s for mid, (_m, s) in states.items()})
    errors = validation_errors(doc)
    if errors:
        raise Failure(f"the state document does not validate against the v2 schema: {errors[0]}")
    click.echo(json.dumps(doc, ensure_ascii=False, indent=None if compact else 2))
    for w in warnings:
        click.echo(f"widgetspy: warning: {w}", err=True)

