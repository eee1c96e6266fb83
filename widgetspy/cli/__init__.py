"""The `widgetspy` command line. Top layer: it parses options, calls the layers
below, and turns their errors into one-line messages with exit status 2."""

from __future__ import annotations

import sys

import click

from .. import __version__
from .errors import Failure


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="widgetspy")
def cli() -> None:
    """Record, inspect and replay Jupyter widget traffic."""


def _register() -> None:
    from .demo import demo
    from .kernelspec import kernelspec
    from .models import models
    from .record import record
    from .replay import replay
    from .show import show
    from .state import state
    from .timeline import timeline
    from .check import check
    from .rules import rules
    from .merge import merge

    for command in (record, replay, show, kernelspec, demo, timeline, state, models, check, rules, merge):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        return cli.main(args=argv, prog_name="widgetspy", standalone_mode=True) or 0
    except Failure as exc:  # pragma: no cover - standalone_mode handles it
        exc.show()
        return exc.exit_code


__all__ = ["cli", "main", "Failure"]

if __name__ == "__main__":
    sys.exit(main())
