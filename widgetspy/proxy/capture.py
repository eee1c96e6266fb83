"""Captured ZMQ traffic -> session records. Sans-IO.

The forwarding devices hand over each message they moved, tagged with its
channel and direction. `Capture` turns that into records: it numbers them,
notices new clients, turns IOPub (un)subscriptions into events, counts heartbeat
pings instead of logging them, and keeps frames that do not parse as
`UnparsedRecord`s. It never sees sockets or files.
"""

from __future__ import annotations

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

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def event(self, name: str, t: float, **data: Any) -> EventRecord:
        return EventRecord(self._next(), t, name, data)

    def frames(
        self, channel: Channel, direction: Direction, frames: Sequence[bytes], t: float
    ) -> list[Record]:
        """Records for one captured multipart message (often one, maybe zero or two)."""
        if channel is Channel.HB:
            if direction is Direction.TO_KERNEL:
                self.hb_pings += 1
            else:
                self.hb_pongs += 1
            if t - self._hb_last_t >= HEARTBEAT_SUMMARY_EVERY:
                summary = self.heartbeat_summary(t)
                return [summary] if summary else []
            return []
        size = sum(len(f) for f in frames)
        if channel is Channel.IOPUB and direction is Direction.TO_KERNEL:
            return [self._subscription(frames, t)]
        try:
            wire = parse_frames(frames)
        except FrameError as exc:
            self.unparsed_count += 1
            return [
                UnparsedRecord(
                    self._next(), t, TAP, direction, channel, str(exc), preview(frames), len(frames), size
                )
            ]
        out: list[Record] = []
        peer = wire.identities[0] if wire.identities else None
        if peer is not None and direction is Direction.TO_KERNEL and peer not in self.clients:
            self.clients.add(peer)
            out.append(self.event(CLIENT_CONNECTED, t, peer=peer_label(peer), channel=channel.value))
        self.message_count += 1
        out.append(
            MessageRecord(
                seq=self._next(),
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

    def batch(self, items: Sequence[tuple[Channel, Direction, Sequence[bytes], float]]) -> list[Record]:
        """Records for a batch of captured messages, in causal order.

        Each channel has its own forwarding thread, so a request and the
        kernel's answers to it can reach the capture thread in either order. A
        kernel message cannot come before the request it answers: such a request
        is moved (with its client_connected event) in front of the first answer,
        and the batch is numbered in that order.
        """
        start = self._seq
        groups = [self.frames(ch, d, frames, t) for ch, d, frames, t in items]
        groups = [g for g in groups if g]
        requests = {}
        for k, g in enumerate(groups):
            last = g[-1]
            if isinstance(last, MessageRecord) and last.direction is Direction.TO_KERNEL and last.msg_id:
                requests[last.msg_id] = k
        out: list[Record] = []
        placed: set[int] = set()
        for k, g in enumerate(groups):
            if k in placed:
                continue
            last = g[-1]
            if isinstance(last, MessageRecord) and last.direction is Direction.TO_FRONTEND:
                j = requests.get(last.msg.parent_id or "")
                if j is not None and j > k and j not in placed:
                    out.extend(groups[j])
                    placed.add(j)
            out.extend(g)
            placed.add(k)
        for i, rec in enumerate(out, start + 1):
            rec.seq = i
        return out

    def _subscription(self, frames: Sequence[bytes], t: float) -> Record:
        first = frames[0] if frames else b""
        if len(frames) == 1 and first[:1] in (b"\x00", b"\x01"):
            return self.event(
                "iopub_subscription",
                t,
                subscribe=first[:1] == b"\x01",
                topic=peer_label(first[1:]),
            )
        self.unparsed_count += 1
        return UnparsedRecord(
            self._next(),
            t,
            TAP,
            Direction.TO_KERNEL,
            Channel.IOPUB,
            "front-end sent something other than a subscription on IOPub",
            preview(frames),
            len(frames),
            sum(len(f) for f in frames),
        )

    def heartbeat_summary(self, t: float) -> EventRecord | None:
        """A heartbeat count line, if the counts changed since the last one."""
        self._hb_last_t = t
        counts = (self.hb_pings, self.hb_pongs)
        if counts == self._hb_reported:
            return None
        self._hb_reported = counts
        return self.event(HEARTBEAT, t, pings=self.hb_pings, pongs=self.hb_pongs)
