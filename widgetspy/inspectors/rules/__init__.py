"""Every rule, registered on import: WS1xx wire, WS2xx comm lifecycle, WS3xx
widget protocol, WS4xx bug patterns, WS5xx state types, WS6xx both taps (run on
sessions recorded with both taps only)."""

from . import both_taps, comms, patterns, types, widget, wire  # noqa: F401
