from __future__ import annotations

import shutil

from rich.console import Console


def make_console() -> Console:
    """A rich console at least 100 columns wide (80 is too narrow for the tables,
    and a pipe or CI log has no terminal width to go by)."""
    return Console(highlight=False, width=max(100, shutil.get_terminal_size((100, 24)).columns))
