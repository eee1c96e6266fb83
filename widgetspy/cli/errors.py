from __future__ import annotations

from typing import IO, Any

import click


class Failure(click.ClickException):
    """A one-line error for the user; exit status 2 (bad input, cannot start...)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"widgetspy: error: {self.format_message()}", err=True)
