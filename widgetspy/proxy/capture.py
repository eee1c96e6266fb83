"""Captured ZMQ traffic -> session records. Sans-IO.

The forwarding devices hand over each message they moved, tagged with its
channel and direction. `Capture` turns that into records: it numbers them,
notices new clients, turns IOPub (un)subscriptions into events, counts heartbeat
pings instead of logging them, and keeps frames that do not parse as
`UnparsedRecord`s. It never sees sockets or files.

Order. Each channel is forwarded by its own thread, which passes a message on
before it hands us the copy, so the kernel's answers to a request can reach us
before the request itself. A kernel message cannot come before the request it
answers: one whose request we have not seen yet is held back (at most `HOLD`
seconds) and numbered right after the request when it arrives. Records are
numbered when they are emitted, so seqs are always in file order.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

from ..codec.zmqframes import FrameError, parse_frames, peer_label, preview
from ..message import Channel, Direction
from ..session.records import (
    CLIENT_CONNECTED,
    HEARTBEAT,
    EventRecord,
    MessageRecord,
    Record,
    UnparsedRecord,
)

TAP = "zmq"
HEARTBEAT_SUMMARY_EVERY = 30.0  # seconds between heartbeat count lines
HOLD = 0.05  # seconds a kernel message waits for the request it answers
REMEMBERED_REQUESTS = 1 << 16  # front-end msg_ids kept to recognise answers

Items = Sequence[tuple[Channel, Direction, Sequence[bytes], float]]


def capture_tag(channel: Channel, direction: Direction) -> bytes:
    """The prefix a device puts in front of each captured message."""
    return f"{channel.value}:{'k' if direction is Direction.TO_KERNEL else 'f'}".encode()


def parse_tag(tag: bytes) -> tuple[Channel, Direction]:
    ch, _, d = tag.decode().partition(":")
    return Channel(ch), Direction.TO_KERNEL if d == "k" else Direction.TO_FRONTEND


class Capture:
    def __init__(self) -> None:
        self._seq = 0
        self.clients: set[bytes] = set()
        self.hb_pings = 0
        self.hb_pongs = 0
        self._hb_reported = (0, 0)
        self._hb_last_t = 0.0
        self.message_count = 0
        self.unparsed_count = 0
        self._requests: OrderedDict[str, None] = OrderedDict()  # front-end msg_ids seen (bounded)
        self._held: list[tuple[float, str, list[Record]]] = []  # (t, awaited request msg_id, records)

    # ------------------------------------------------------------ numbering

    def _number(self, records: list[Record]) -> list[Record]:
        for rec in records:
            self._seq += 1
            rec.seq = self._seq
        return records

    def event(self, name: str, t: float, **data: Any) -> EventRecord:
        """A recorder event, numbered now (emit it now)."""
        (rec,) = self._number([EventRecord(0, t, name, data)])
        return rec  # type: ignore[return-value]

    def frames(self, channel: Channel, direction: Direction, frames: Sequence[bytes], t: float) -> list[Record]:
        """Records for one captured message, numbered now (no holding back)."""
        return self._number(self._records(channel, direction, frames, t))

    def heartbeat_summary(self, t: float) -> EventRecord | None:
        """A heartbeat count line, numbered now, if the counts changed since the last one."""
        rec = self._heartbeat(t)
        return self._number([rec])[0] if rec else None  # type: ignore[return-value]

    # ------------------------------------------------------------ batches

    def batch(self, items: Items, now: float | None = None) -> list[Record]:
        """Records for a batch of captured messages, in causal order (see the
        module doc), numbered. `now` (defaults to the items' time) releases held
        records whose request did not come in time; call with no items on idle."""
        out: list[Record] = []
        for channel, direction, frames, t in items:
            group = self._records(channel, direction, frames, t)
            if not group:
                continue
            last = group[-1]
            if isinstance(last, MessageRecord):
                if last.direction is Direction.TO_KERNEL and last.msg_id:
                    self._remember(last.msg_id)
                    out.extend(group)
                    out.extend(self._release(last.msg_id, last.t))
                    continue
                parent = last.msg.parent_id
                if parent and parent not in self._requests:
                    self._held.append((t, parent, group))
                    continue
            out.extend(group)
        if now is None and items:
            now = max(t for *_, t in items)
        if now is not None and self._held:
            out.extend(self._expire(now))
        return self._number(out)

    def flush(self) -> list[Record]:
        """Everything still held, numbered (at the end of a recording)."""
        held, self._held = self._held, []
        return self._number([r for _t, _p, group in held for r in group])

    def _remember(self, msg_id: str) -> None:
        self._requests[msg_id] = None
        if len(self._requests) > REMEMBERED_REQUESTS:
            self._requests.popitem(last=False)

    def _release(self, msg_id: str, t: float) -> list[Record]:
        if not self._held:
            return []
        out: list[Record] = []
        keep = []
        for item in self._held:
            if item[1] == msg_id:
                for rec in item[2]:
                    rec.t = max(rec.t, t)  # times stay in file order
                    out.append(rec)
            else:
                keep.append(item)
        self._held = keep
        return out

    def _expire(self, now: float) -> list[Record]:
        out = [r for t, _p, group in self._held if now - t >= HOLD for r in group]
        if out:
            self._held = [item for item in self._held if now - item[0] < HOLD]
        return out

    # ------------------------------------------------------------ records (unnumbered)

    def _records(self, channel: Channel, direction: Direction, frames: Sequence[bytes], t: float) -> list[Record]:
        if channel is Channel.HB:
            if direction is Direction.TO_KERNEL:
                self.hb_pings += 1
            else:
                self.hb_pongs += 1
            if t - self._hb_last_t >= HEARTBEAT_SUMMARY_EVERY:
                summary = self._heartbeat(t)
                return [summary] if summary else []
            return []
        size = sum(len(f) for f in frames)
        if channel is Channel.IOPUB and direction is Direction.TO_KERNEL:
            return [self._subscription(frames, t)]
        try:
            wire = parse_frames(frames)
        except FrameError as exc:
            self.unparsed_count += 1
            return [UnparsedRecord(0, t, TAP, direction, channel, str(exc), preview(frames), len(frames), size)]
        out: list[Record] = []
        peer = wire.identities[0] if wire.identities else None
        if peer is not None and direction is Direction.TO_KERNEL and peer not in self.clients:
            self.clients.add(peer)
            out.append(EventRecord(0, t, CLIENT_CONNECTED, {"peer": peer_label(peer), "channel": channel.value}))
        self.message_count += 1
        out.append(
            MessageRecord(
                seq=0,
                t=t,
                tap=TAP,
                direction=direction,
                channel=channel,
                msg=wire.message,
                frames=len(frames),
                size=size,
                peer=peer_label(peer) if peer is not None else None,
                strict_json=wire.strict_json,
            )
        )
        return out

    def _subscription(self, frames: Sequence[bytes], t: float) -> Record:
        first = frames[0] if frames else b""
        if len(frames) == 1 and first[:1] in (b"\x00", b"\x01"):
            data = {"subscribe": first[:1] == b"\x01", "topic": peer_label(first[1:])}
            return EventRecord(0, t, "iopub_subscription", data)
        self.unparsed_count += 1
        return UnparsedRecord(
            0,
            t,
            TAP,
            Direction.TO_KERNEL,
            Channel.IOPUB,
            "front-end sent something other than a subscription on IOPub",
            preview(frames),
            len(frames),
            sum(len(f) for f in frames),
        )

    def _heartbeat(self, t: float) -> EventRecord | None:
        self._hb_last_t = t
        counts = (self.hb_pings, self.hb_pongs)
        if counts == self._hb_reported:
            return None
        self._hb_reported = counts
        return EventRecord(0, t, HEARTBEAT, {"pings": self.hb_pings, "pongs": self.hb_pongs})
