"""Checking while recording: a recorder listener that feeds a Checker.

The recorder calls listeners with lists of records from its capture thread
(and from the main thread for events); `LiveChecker` serializes them with a
lock and hands each finding to `emit` as soon as it is found.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from .base import Finding
from .checker import Checker


class LiveChecker:
    def __init__(self, checker: Checker, emit: Callable[[Finding], None]) -> None:
        self.checker = checker
        self.emit = emit
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def __call__(self, records: Iterable[Any]) -> None:
        with self.lock:
            if self.error is not None:
                return
            try:
                for rec in records:
                    for finding in self.checker.feed(rec):
                        self.emit(finding)
            except Exception as exc:  # never break the recording because of a checker bug
                self.error = exc

    def finish(self) -> list[Finding]:
        with self.lock:
            if self.error is None:
                for finding in self.checker.finish():
                    self.emit(finding)
            return self.checker.findings
