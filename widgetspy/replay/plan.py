"""What to replay: the front-end's side of a session, step by step. Sans-IO.

A step is one front-end message to send again. For each step the plan also
keeps what the front-end had already seen from the kernel when it sent it: how
many kernel messages of each earlier request (busy, outputs, input_request,
idle, ...). Under `--pace idle` the replay waits for
the same progress before sending (or for the request to be over, since a run
may batch its output differently), so a message sent after a cell finished is
sent after that cell finishes again, and an interrupt sent while a cell ran is
sent while it runs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..message import Channel, Direction
from ..session.records import MessageRecord, Record
from ..session.taps import prefer_tap

DEBUG_TYPES = frozenset({"debug_request"})


@dataclass
class Step:
    seq: int
    t: float
    record: MessageRecord
    peer: str  # the recorded client (routing identity or session), one replay client each
    # Kernel progress the front-end saw since the previous step (progress only
    # grows, so what earlier steps waited for still holds): earlier request
    # (its seq) -> how many of its kernel messages had arrived.
    waits: dict[int, int] = field(default_factory=dict)
    model: str = ""  # the widget class of the comm it talks to, if any

    @property
    def msg_id(self) -> str:
        return self.record.msg_id or f"@{self.seq}"

    @property
    def msg_type(self) -> str:
        return self.record.msg_type

    @property
    def channel(self) -> Channel:
        return self.record.channel

    def describe(self) -> str:
        return describe_request(self.record, self.model)


@dataclass
class Skipped:
    seq: int
    msg_type: str
    why: str


@dataclass
class Plan:
    steps: list[Step]
    skipped: list[Skipped]
    # what the kernel answered then: request seq -> its kernel messages (replies, IOPub, stdin)
    expected: dict[int, list[MessageRecord]]
    records: list[Record]

    def skipped_summary(self) -> str:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.why] = counts.get(s.why, 0) + 1
        return ", ".join(f"{n} {why}" for why, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def describe_request(rec: MessageRecord, model: str = "") -> str:
    """A short label: `execute_request "s.value = 42"`, `comm_msg update IntSliderModel 8ed913c7`."""
    msg = rec.msg
    if msg.msg_type == "execute_request":
        code = str(msg.content.get("code", "")).strip().splitlines()
        first = code[0] if code else ""
        more = " …" if len(code) > 1 else ""
        return f'execute_request "{first[:60]}{more}"'
    if msg.is_comm:
        method = msg.comm_method
        return f"{msg.msg_type}{' ' + method if method else ''}{' ' + model if model else ''} {str(msg.comm_id)[:8]}"
    return msg.msg_type


def build_plan(records: Iterable[Record], *, include_debug: bool = False, until: int | None = None) -> Plan:
    # a session with both taps holds most messages twice (same msg_id): replay the ZMQ copy only
    records = list(prefer_tap(records))
    messages = [r for r in records if isinstance(r, MessageRecord)]
    front = [r for r in messages if r.direction is Direction.TO_KERNEL]
    nudgers = _server_nudgers(front)

    models = {
        r.msg.comm_id: str((r.msg.comm_data.get("state") or {}).get("_model_name") or "")
        for r in messages
        if r.msg_type == "comm_open" and r.msg.comm_id and isinstance(r.msg.comm_data.get("state"), dict)
    }
    owner = _answers(messages)  # kernel message seq -> the front-end message it answers
    answered = set(owner.values())

    restarting = False  # between a restart request and the first request the new kernel answered
    steps: list[Step] = []
    skipped: list[Skipped] = []
    expected: dict[int, list[MessageRecord]] = {}
    seen: dict[int, int] = {}  # request seq -> its kernel messages so far
    changed: dict[int, int] = {}  # ... those that changed since the last step
    shutdown = 0  # seq of the latest shutdown/restart request
    teardown: set[int] = set()
    for rec in messages:
        if rec.direction is Direction.TO_FRONTEND:
            request = owner.get(rec.seq)
            if request is not None and request < shutdown:
                teardown.add(rec.seq)  # the old kernel's teardown output, left out on both sides
            elif request in expected:
                seen[request] = changed[request] = seen.get(request, 0) + 1  # type: ignore[index]
            continue
        if until is not None and rec.seq >= until:
            continue  # not sent; the answers to earlier requests still count
        if rec.msg_type == "shutdown_request":
            shutdown = rec.seq
        why = _skip_reason(rec, nudgers, include_debug)
        if not why and restarting:
            if rec.seq in answered:
                restarting = False
            elif rec.channel is not Channel.STDIN:
                why = "lost during the kernel restart"
        if not why and rec.msg_type == "shutdown_request":
            restarting = True
        if why:
            skipped.append(Skipped(rec.seq, rec.msg_type, why))
            continue
        step = Step(rec.seq, rec.t, rec, peer=_peer(rec), waits=changed,
                    model=models.get(rec.msg.comm_id or "", ""))
        steps.append(step)
        expected[step.seq] = []
        changed = {}
    for rec in messages:
        request = owner.get(rec.seq)
        if request in expected and rec.seq not in teardown:
            expected[request].append(rec)  # type: ignore[index]
    return Plan(steps, skipped, expected, records)


def _answers(messages: list[MessageRecord]) -> dict[int, int]:
    """Which front-end message each kernel message answers (kernel seq -> front-end seq).

    The latest front-end message with the parent's msg_id before it (ids are not
    always unique: nbclient's manager and client count alike), or else the first
    one after it (across channels a request may be captured after its answers;
    recordings made before the recorder put batches in causal order show it).
    """
    sent: dict[str, list[int]] = {}
    for rec in messages:
        if rec.direction is Direction.TO_KERNEL and rec.msg_id:
            sent.setdefault(rec.msg_id, []).append(rec.seq)
    owner: dict[int, int] = {}
    for rec in messages:
        if rec.direction is Direction.TO_FRONTEND:
            seqs = sent.get(rec.msg.parent_id or "")
            if seqs:
                before = [s for s in seqs if s < rec.seq]
                owner[rec.seq] = before[-1] if before else seqs[0]
    return owner


def _peer(rec: MessageRecord) -> str:
    return rec.peer or rec.msg.session or "?"


def _server_nudgers(front: list[MessageRecord]) -> set[str]:
    """Clients that only ever sent kernel_info_request: jupyter_server's
    connection nudges, not a front-end."""
    types: dict[str, set[str]] = {}
    for rec in front:
        types.setdefault(_peer(rec), set()).add(rec.msg_type)
    return {peer for peer, seen in types.items() if seen == {"kernel_info_request"} and len(types) > 1}


def _skip_reason(rec: MessageRecord, nudgers: set[str], include_debug: bool) -> str | None:
    if rec.channel not in (Channel.SHELL, Channel.CONTROL, Channel.STDIN):
        return "not on a request channel"
    if _peer(rec) in nudgers:
        return "server kernel_info nudge"
    if rec.msg_type in DEBUG_TYPES and not include_debug:
        return "debugger message"
    if rec.msg_type == "shutdown_request" and not rec.msg.content.get("restart"):
        return "final shutdown"
    return None
