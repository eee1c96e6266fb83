"""`widgetspy models FILE`: every widget model, like pstree: references as a tree."""

from __future__ import annotations

from collections import defaultdict

import click
from rich.markup import escape
from rich.tree import Tree

from ..timeline import Model, Reference, Side, Timeline
from .console import make_console
from .timeline import SIDES, load_timeline


ENDS = {"kernel_exited": "kernel exit", "kernel_restarted": "kernel restart", "new kernel session": "kernel restart"}


def lifetime(model: Model, tl: Timeline) -> str:
    text = f"{model.opened_by} @{model.open_msg_seq}"
    if model.closed_by in ENDS:
        text += f" – {ENDS[model.closed_by]} @{model.close_msg_seq}"
    elif model.closed_by:
        text += f" → [red]closed by {model.closed_by} @{model.close_msg_seq}[/]"
    if len(tl.epochs) > 1:
        text = f"epoch {model.epoch}: " + text
    return text


def label(model: Model, tl: Timeline, via: str | None = None, repeat: bool = False) -> str:
    name = escape(model.class_name)
    module = (model.model_module or "?").removeprefix("@jupyter-widgets/")
    head = f"[dim]{escape(via)}[/] " if via else ""
    if repeat:
        return f"{head}[bold]{name}[/] {model.short_id} [dim](shown above)[/]"
    counts = ", ".join(f"{n} {m}" for m, n in sorted(model.update_count.items()))
    extra = []
    if model.views:
        extra.append(f"{len(model.views)} view(s)")
    if model.custom:
        extra.append(f"{len(model.custom)} custom")
    return (f"{head}[bold]{name}[/] {model.short_id} [dim]{escape(module)}[/] · {lifetime(model, tl)}"
            f" · {model.change_count} change(s){' (' + counts + ')' if counts else ''}"
            f"{' · ' + ', '.join(extra) if extra else ''}")


def build_tree(tl: Timeline, side: Side, title: str) -> Tree:
    models = {m.comm_id: m for m in tl.models}
    children: dict[str, list[Reference]] = defaultdict(list)
    referenced: set[str] = set()
    for ref in _all_references(tl, side):
        if ref.target in models and ref.target != ref.source:
            children[ref.source].append(ref)
            referenced.add(ref.target)
    root = Tree(title)
    shown: set[str] = set()

    def add(node: Tree, model: Model, via: str | None, path: tuple[str, ...]) -> None:
        if model.comm_id in shown or model.comm_id in path:
            node.add(label(model, tl, via, repeat=True))
            return
        shown.add(model.comm_id)
        branch = node.add(label(model, tl, via))
        for ref in children.get(model.comm_id, []):
            add(branch, models[ref.target], ref.label, (*path, model.comm_id))

    for model in tl.models:
        if model.comm_id not in referenced:
            add(root, model, None, ())
    for model in tl.models:  # cycles with no root
        if model.comm_id not in shown:
            add(root, model, None, ())
    return root


def _all_references(tl: Timeline, side: Side) -> list[Reference]:
    """The references each model held at its last moment (closed models included)."""
    refs = tl.references(at=tl.final_seq(), side=side)
    seen = {r.source for r in refs}
    from ..timeline import find_references

    for model in tl.models:
        if model.comm_id not in seen:
            state = model.state[side]
            refs.extend(Reference(model.comm_id, p, t, False) for p, t in find_references(state))
    return refs


@click.command("models")
@click.argument("file", type=click.Path())
@click.option("--side", type=SIDES, default="kernel", show_default=True,
              help="Whose references to follow: the kernel's or the front-end's view.")
def models(file: str, side: str) -> None:
    """The widget models of a session as a tree of references (children under parents)."""
    tl, warnings = load_timeline(file)
    console = make_console()
    n = len(tl.models)
    closed = sum(1 for m in tl.models if m.closed_by and m.closed_by not in ENDS)
    title = (f"[bold]{escape(file)}[/]: {n} widget model(s), {closed} closed before the end, "
             f"{len(tl.epochs)} kernel epoch(s)")
    if not n:
        console.print(title)
    else:
        console.print(build_tree(tl, Side(side), title))
    others = [c for c in tl.comms if not isinstance(c, Model)]
    if others:
        console.print("other comms: " + ", ".join(
            f"{escape(c.target_name)} {c.comm_id[:8]} ({c.opened_by} @{c.open_msg_seq}"
            f"{', closed by ' + c.closed_by if c.closed_by else ''})" for c in others))
    if tl.problems:
        console.print(f"[yellow]{len(tl.problems)} problem(s)[/], first:")
        for p in tl.problems[:5]:
            console.print(f"  seq {p.seq}: {escape(p.text)}{' (' + p.model_id[:8] + ')' if p.model_id else ''}")
    for w in warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
