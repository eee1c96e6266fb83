"""The recorder: captured batches and recorder events -> the session file.

It owns the one `Capture` (so every record gets the next seq), writes each batch
with a single write, and hands the records to listeners (live checks, the shim's
own bookkeeping). Thread-safe: the capture thread and the shim's main thread
both write through it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..session.files import SessionWriter
from ..session.records import RECORDING_STOPPED, Record
from .capture import Capture
from .redact import Redactor
from .zmq_mitm import Batch

Listener = Callable[[list[Record]], None]


class Recorder:
    def __init__(self, writer: SessionWriter, clock: Callable[[], float], redactor: Redactor | None = None):
        self.writer = writer
        self.clock = clock
        self.redactor = redactor  # None: records are written as captured (proxy/redact.py)
        self.capture = Capture()
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.closed = False

    def on_batch(self, batch: Batch) -> None:
        with self._lock:
            records = self.capture.batch(batch, now=self.clock())  # an empty batch releases held records
            if records and not self.closed:
                records = self._write(records)
            self._notify(records)

    def event(self, name: str, **data: Any) -> Record:
        """A recorder event (kernel started/exited...): a boundary, so whatever
        capture still holds back is written before it."""
        with self._lock:
            records = self.capture.flush()
            rec = self.capture.event(name, self.clock(), **data)
            records.append(rec)
            if not self.closed:
                records = self._write(records)
                rec = records[-1]
        self._notify(records)
        return rec

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
            records = self._write(records)
            self.closed = True
            self.writer.close()
        self._notify(records)

    def _write(self, records: list[Record]) -> list[Record]:
        """Write records (redacted first when a redactor is set); returns them as written."""
        if self.redactor is None:
            self.writer.write_many(records)
            return records
        lines, written = self.redactor.encode_lines(records)
        self.writer.write_lines(lines)
        return written

    def _notify(self, records: list[Record]) -> None:
        if records:
            for listener in self.listeners:
                listener(records)
