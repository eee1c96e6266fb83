"""`widgetspy kernelspec install|list|remove`: wrapper kernelspecs that record."""

from __future__ import annotations

from pathlib import Path

import click

from ..proxy import kernelspec as ks
from ..proxy.shim import default_recordings_dir
from .errors import Failure


@click.group()
def kernelspec() -> None:
    """Install wrapper kernelspecs that record every kernel they start."""


@kernelspec.command("install")
@click.option("--kernel", "wrapped", default="python3", show_default=True, help="Kernelspec to wrap.")
@click.option("--name", default=None, help="Name of the wrapper [<kernel>-widgetspy].")
@click.option("--recordings", type=click.Path(), default=None, help="Folder for session files.")
@click.option("--user", "where", flag_value="user", default=True, help="Install for this user (default).")
@click.option("--sys-prefix", "where", flag_value="sys-prefix", help="Install into this environment.")
def install(wrapped: str, name: str | None, recordings: str | None, where: str) -> None:
    """Install "<kernel> (widgetspy)"."""
    rec_dir = Path(recordings).resolve() if recordings else None
    import sys

    try:
        path = ks.install(
            wrapped, name, rec_dir, user=where == "user", prefix=sys.prefix if where == "sys-prefix" else None
        )
    except ks.KernelspecError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"installed kernelspec {Path(path).name} in {path}")
    click.echo(f"  sessions go to {rec_dir or default_recordings_dir()}")


@kernelspec.command("list")
def list_() -> None:
    """List installed widgetspy kernelspecs."""
    found = ks.wrappers()
    if not found:
        click.echo("no widgetspy kernelspecs installed (widgetspy kernelspec install)")
        return
    for name, info in sorted(found.items()):
        click.echo(f"{name}  wraps {info['wraps']}  -> {info['recordings'] or default_recordings_dir()}")
        click.echo(f"    {info['resource_dir']}")


@kernelspec.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove a widgetspy kernelspec."""
    try:
        path = ks.remove(name)
    except ks.KernelspecError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"removed {path}")
