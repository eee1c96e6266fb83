"""widgetspy: record, inspect and replay Jupyter widget traffic."""

__version__ = "0.1.0"
