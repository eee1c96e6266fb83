"""`widgetspy rules`: the inspectors' rules with their descriptions."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from ..inspectors import Severity, all_rules
from .console import make_console

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


@click.command("rules")
@click.argument("ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one rule per line.")
@click.option("--short", is_flag=True, help="One line per rule (no description).")
def rules(ids: tuple[str, ...], as_json: bool, short: bool) -> None:
    """List the rules `widgetspy check` applies (optionally only IDS / id prefixes)."""
    chosen = [r for r in all_rules() if not ids or any(r.id.startswith(i.upper()) or r.name == i for i in ids)]
    if as_json:
        for r in chosen:
            click.echo(json.dumps(r.meta(), ensure_ascii=False))
        return
    console = make_console()
    category = None
    for r in chosen:
        if r.category != category:
            category = r.category
            console.print(f"\n[bold]{escape(category)}[/]" if not short else f"[bold]{escape(category)}[/]")
        sev = f"[{STYLE[r.severity]}]{r.severity.label:<7}[/]"
        console.print(f"  [bold]{r.id}[/] {sev} {escape(r.name)}: {escape(r.title)}")
        if not short:
            console.print(f"      {escape(r.description)}", style="default")
            console.print(f"      [dim]source: {escape(r.source)}[/]")
    console.print(f"\n{len(chosen)} rule(s)" if not short else f"{len(chosen)} rule(s)")
