"""Every rule, registered on import: WS1xx wire, WS2xx comm lifecycle, WS3xx
widget protocol, WS4xx bug patterns, WS5xx state types."""

from . import comms, patterns, types, widget, wire  # noqa: F401
