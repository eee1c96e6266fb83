"""Sessions with more than one tap: pick one tap's copy, or pair the copies. Sans-IO.

A session recorded with both taps holds most messages twice: once as the kernel
saw it (`tap: "zmq"`) and once as the browser saw it (`tap: "ws"`). Both copies
carry the same `header.msg_id`. Consumers that model one conversation (timeline,
replay, the single-tap inspector rules) read one tap: `prefer_tap` keeps the ZMQ
copy (what really reached or left the kernel) and drops the websocket one;
`correlate` pairs them for the rules that need both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from .lean import LeanMessageRecord
from .records import MessageRecord, Record, UnparsedRecord

ZMQ = "zmq"
WS = "ws"
PREFERENCE = (ZMQ, WS)  # which tap's copy one-tap consumers read, best first
_TAPPED = (MessageRecord, LeanMessageRecord, UnparsedRecord)  # the records that came through a tap


def preferred_tap(taps: Sequence[str]) -> str | None:
    """The tap a one-tap reader should use, given the header's `taps`."""
    for tap in PREFERENCE:
        if tap in taps:
            return tap
    return taps[0] if taps else None


def prefer_tap(records: Iterable[Record], taps: Sequence[str] | None = None) -> Iterator[Record]:
    """The records of one tap (the preferred one), plus every event.

    `taps`: the header's list; None scans the records first (they are then
    materialized). With a single tap, records pass through unchanged.
    """
    if taps is None:
        records = list(records)
        taps = sorted({r.tap for r in records if isinstance(r, _TAPPED)},
                      key=lambda t: PREFERENCE.index(t) if t in PREFERENCE else 99)
    if len(taps) < 2:
        yield from records
        return
    keep = preferred_tap(taps)
    for rec in records:
        if isinstance(rec, _TAPPED) and rec.tap != keep:
            continue
        yield rec


@dataclass
class Copies:
    """Every copy of one message (by msg_id), per tap, in record order."""

    msg_id: str
    zmq: list[MessageRecord] = field(default_factory=list)
    ws: list[MessageRecord] = field(default_factory=list)

    @property
    def both(self) -> bool:
        return bool(self.zmq) and bool(self.ws)

    def latency(self) -> float | None:
        """Seconds from the first copy on the sending side to the first on the other
        (kernel -> browser for kernel messages, browser -> kernel for front-end ones)."""
        if not self.both:
            return None
        return abs(self.ws[0].t - self.zmq[0].t)


def correlate(records: Iterable[Record]) -> dict[str, Copies]:
    """msg_id -> its copies on each tap."""
    out: dict[str, Copies] = {}
    for rec in records:
        if not isinstance(rec, MessageRecord):
            continue
        mid = rec.msg.msg_id
        if not isinstance(mid, str):
            continue
        c = out.get(mid)
        if c is None:
            c = out[mid] = Copies(mid)
        if rec.tap == ZMQ:
            c.zmq.append(rec)
        elif rec.tap == WS:
            c.ws.append(rec)
    return out
