"""`widgetspy check FILE`: run the inspectors' rules over a session."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from ..inspectors import Checker, Finding, Severity, select_rules
from ..inspectors.report import counts, summary_line, to_json, to_junit, to_sarif
from ..session import SessionReadError, open_session
from .console import make_console
from .errors import Failure

FORMATS = click.Choice(["text", "json", "sarif", "junit"])
FAIL_ON = click.Choice(["error", "warning", "never"])
STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


@click.command("check")
@click.argument("file", type=click.Path())
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True, help="Output format.")
@click.option("--select", "select", multiple=True, metavar="IDS",
              help="Only these rules: ids or prefixes (WS3, WS401), comma-separated or repeated.")
@click.option("--ignore", "ignore", multiple=True, metavar="IDS", help="Skip these rules (ids or prefixes).")
@click.option("--fail-on", type=FAIL_ON, default="error", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
@click.option("-o", "--output", type=click.Path(), help="Write the report here instead of stdout.")
def check(file: str, fmt: str, select: tuple[str, ...], ignore: tuple[str, ...], fail_on: str,
          output: str | None) -> None:
    """Check a session against the widget protocol's rules (see `widgetspy rules`).

    Exit status: 0 clean, 1 findings at or above --fail-on, 2 bad input.
    """
    try:
        chosen = select_rules(select or None, ignore or None)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    lines: dict[int, int] = {}
    try:
        sf = open_session(file)
        # both taps: the one-tap rules read the ZMQ copy, the WS6xx rules every record; one tap: no WS6xx
        checker = Checker(rules=[r() for r in chosen], taps=sf.header.taps)
        if checker.left_out and select:
            ids = ", ".join(r.id for r in checker.left_out)
            click.echo(f"widgetspy: note: {ids} need a session with both taps (widgetspy record --web); "
                       f"{file} has {', '.join(sf.header.taps) or 'no'} tap(s) only", err=True)
        rules = [type(r) for r in checker.rules]
        line = 1
        for rec in sf:
            line += 1
            lines[rec.seq] = line
            checker.feed(rec)
    except SessionReadError as exc:
        raise Failure(str(exc)) from None
    checker.finish()
    findings = sorted(checker.findings, key=lambda f: (f.seq, f.rule_id))
    messages = checker.ctx.messages
    level = None if fail_on == "never" else Severity.parse(fail_on)
    if fmt == "text":
        _text(findings, file, len(rules), messages, sf.warnings, output)
    else:
        if fmt == "json":
            doc = to_json(findings, file, rules, messages)
        elif fmt == "sarif":
            doc = to_sarif(findings, file, rules, lines)
        else:
            doc = to_junit(findings, file, rules, level)
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(doc if doc.endswith("\n") else doc + "\n")
        else:
            click.echo(doc)
        for w in sf.warnings:
            click.echo(f"widgetspy: warning: {w}", err=True)
    failed = level is not None and any(f.severity >= level for f in findings)
    sys.exit(1 if failed else 0)


def _text(findings: list[Finding], path: str, nrules: int, messages: int, warnings: list[str],
          output: str | None) -> None:
    fh = open(output, "w", encoding="utf-8") if output else None
    try:
        console = make_console()
        if fh is not None:
            from rich.console import Console

            console = Console(file=fh, width=120, highlight=False, no_color=True)
        for sev in sorted(Severity, reverse=True):
            group = [f for f in findings if f.severity is sev]
            if not group:
                continue
            console.print(f"[{STYLE[sev]}]{sev.label.upper()}[/] ({len(group)})")
            for f in group:
                model = f" [bold]{escape(f.model_label)}[/]" if f.model_id else ""
                console.print(f"  [{STYLE[sev]}]{f.rule_id}[/] seq {f.seq}{model}: {escape(f.message)}")
                if f.excerpt:
                    console.print(f"      [dim]{escape(f.excerpt)}[/]", overflow="ellipsis", no_wrap=True)
        c = counts(findings)
        style = "bold red" if c["error"] else ("yellow" if c["warning"] else "green")
        console.print(f"[{style}]{escape(summary_line(findings, path, nrules, messages))}[/]")
        for w in warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
    finally:
        if fh is not None:
            fh.close()
