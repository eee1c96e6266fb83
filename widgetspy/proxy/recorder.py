"""The recorder: captured batches and recorder events -> the session file.

It owns the one `Capture` (so every record gets the next seq), writes each batch
with a single write, and hands the records to listeners (live checks, the shim's
own bookkeeping). Thread-safe: the capture thread and the shim's main thread
both write through it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ..session.files import SessionWriter
from ..session.records import RECORDING_STOPPED, Record
from .capture import Capture
from .zmq_mitm import Batch

Listener = Callable[[list[Record]], None]


class Recorder:
    def __init__(self, writer: SessionWriter, clock: Callable[[], float]):
        self.writer = writer
        self.clock = clock
        self.capture = Capture()
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.closed = False

    def on_batch(self, batch: Batch) -> None:
        with self._lock:
            records = self.capture.batch(batch, now=self.clock())  # an empty batch releases held records
            if records and not self.closed:
                self.writer.write_many(records)
            self.last_activity = time.monotonic()
        self._notify(records)

    def event(self, name: str, **data: Any) -> Record:
        with self._lock:
            rec = self.capture.event(name, self.clock(), **data)
            if not self.closed:
                self.writer.write(rec)
        self._notify([rec])
        return rec

    def settle(self, quiet: float = 0.02, timeout: float = 1.0) -> None:
        """Wait until no capture arrived for `quiet` seconds (or `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - self.last_activity < quiet:
            time.sleep(quiet / 2)

    def close(self, reason: str, **data: Any) -> None:
        if self.closed:
            return
        with self._lock:
            t = self.clock()
            records = self.capture.flush()
            hb = self.capture.heartbeat_summary(t)
            records += [hb] if hb else []
            records.append(
                self.capture.event(
                    RECORDING_STOPPED,
                    t,
                    reason=reason,
                    messages=self.capture.message_count,
                    unparsed=self.capture.unparsed_count,
                    heartbeat_pings=self.capture.hb_pings,
                    **data,
                )
            )
            self.writer.write_many(records)
            self.closed = True
            self.writer.close()
        self._notify(records)

    def _notify(self, records: list[Record]) -> None:
        if records:
            for listener in self.listeners:
                listener(records)
