"""The replay state machine. Sans-IO: the runner asks it what to send and tells
it what came back; it never touches a socket.

    engine = ReplayEngine(plan, pace="idle")
    while not engine.finished():
        step = engine.ready()            # the next step, if nothing holds it back
        if step: header = send(engine.build(step)); engine.sent(step, header["msg_id"])
        for channel, msg in receive(): engine.received(channel, msg)
    digests = engine.digests()

What holds a step back:
- always: ids it needs that the new kernel has not made yet (a comm the kernel
  opens, the `input_request` an `input_reply` answers, a subshell), unless the
  request that should have made them is already over;
- with `pace="idle"`: the kernel progress the front-end had seen when it sent
  the message (plan.Step.waits and friends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..message import Channel, Message
from ..session.records import MessageRecord
from .compare import Digest, digest
from .idmap import IdMap
from .plan import Plan, Step

PACES = ("idle", "recorded", "fast")


@dataclass
class Outgoing:
    """One message for the runner to sign and send (fresh header, new kernel's key)."""

    step: Step
    channel: Channel
    msg_type: str
    content: dict[str, Any]
    metadata: dict[str, Any]
    buffers: list[bytes]
    parent: dict[str, Any] | None
    header_extra: dict[str, Any] = field(default_factory=dict)  # e.g. subshell_id


@dataclass
class _Done:
    """What completes a request: its idle and its reply, when the recording had them."""

    idle: bool
    reply: bool
    count: int  # kernel messages recorded: what completes a request the recording cut short


class ReplayEngine:
    def __init__(self, plan: Plan, pace: str = "idle"):
        if pace not in PACES:
            raise ValueError(f"pace must be one of {', '.join(PACES)}")
        self.plan = plan
        self.pace = pace
        self.ids = IdMap()
        self.position = 0  # index of the next step
        # Requests are known by their recorded seq (msg ids are not always unique).
        self.seen: dict[int, int] = {}  # request -> its kernel messages received in the replay
        self.idle: set[int] = set()
        self.replied: set[int] = set()
        self.actual: dict[int, list[Message]] = {s.seq: [] for s in plan.steps}
        self.step_of: dict[int, Step] = {s.seq: s for s in plan.steps}
        self.request_of: dict[str, int] = {}  # replayed msg_id -> request
        self.sent_seqs: list[int] = []
        self._sent: set[int] = set()
        self._incomplete: set[int] = set()
        self.notes: list[str] = []
        self._done: dict[int, _Done] = {}
        self.restart: int | None = None  # a replayed restart request, until the new kernel answers
        self._pending_inputs: dict[int, list[str]] = {}  # request -> recorded input_request ids, in order
        self._pending_subshells: dict[int, list[str]] = {}
        self._kernel_comms: dict[str, int] = {}  # recorded kernel-opened comm id -> the request that opened it
        self._input_owner: dict[str, int] = {}  # recorded input_request id -> its request
        self._input_seqs: list[tuple[int, str]] = []  # (seq, id) of every recorded input_request
        for step in plan.steps:
            expected = plan.expected[step.seq]
            self.ids.expect_comm_opens(step.seq, [r.msg for r in expected if r.msg_type == "comm_open"])
            for r in expected:
                if r.msg_type == "comm_open" and r.msg.comm_id:
                    self._kernel_comms[r.msg.comm_id] = step.seq
            inputs = [(r.seq, r.msg_id or "") for r in expected if r.msg_type == "input_request"]
            self._pending_inputs[step.seq] = [input_id for _, input_id in inputs]
            for _, input_id in inputs:
                self._input_owner[input_id] = step.seq
            self._input_seqs += inputs
            self._pending_subshells[step.seq] = [
                str(r.msg.content.get("subshell_id")) for r in expected
                if r.msg_type == "create_subshell_reply" and r.msg.content.get("subshell_id")
            ]
            self._done[step.seq] = _Done(
                idle=any(r.msg_type == "status" and r.msg.content.get("execution_state") == "idle" for r in expected),
                reply=any(r.msg_type.endswith("_reply") for r in expected),
                count=len(expected),
            )

    # ------------------------------------------------------------ sending

    def ready(self) -> Step | None:
        """The next step if it may be sent now (the runner handles recorded pacing)."""
        if self.position >= len(self.plan.steps):
            return None
        step = self.plan.steps[self.position]
        return None if self.blocked_on(step) else step

    def blocked_on(self, step: Step) -> str | None:
        """Why `step` cannot be sent yet (None: it can)."""
        for cid in self._referenced_kernel_comms(step):
            opener = self._kernel_comms[cid]
            if not self.ids.knows(cid) and not self.complete(opener):
                return f"the kernel to open comm {cid[:8]} (during {self.step_of[opener].describe()} @{opener})"
        answered = self._input_answered(step) if step.msg_type == "input_reply" else None
        if answered is not None and not self.ids.knows(answered):
            request = self._input_owner.get(answered)
            if request is not None and not self.complete(request):
                return f"the input_request of {self.step_of[request].describe()} @{request}"
        if self.restart is not None:
            return "the kernel to come back after its restart"
        # Control and stdin messages overtake the shell queue: whatever the pace,
        # they wait for what the front-end had seen (an interrupt for its cell to run).
        if self.pace == "idle" or step.channel is not Channel.SHELL:
            # The request an input_reply answers cannot go further until it is sent:
            # output the recording shows before the reply (captured a moment early
            # from another channel) comes after it.
            answers = self._input_owner.get(answered) if answered is not None else None
            for request, count in step.waits.items():
                if request == answers:
                    continue
                if self.seen.get(request, 0) < count and not self.complete(request):
                    return (f"{self.step_of[request].describe()} @{request} to get further "
                            f"({self.seen.get(request, 0)}/{count} messages)")
        return None

    def _input_answered(self, step: Step) -> str | None:
        """The recorded input_request an input_reply answers: its parent, or with no
        parent header (jupyter_client's `input()` sends none) the last one before it."""
        parent = step.record.msg.parent_id
        if parent:
            return parent
        earlier = [input_id for seq, input_id in self._input_seqs if seq < step.seq]
        return earlier[-1] if earlier else None

    def build(self, step: Step) -> Outgoing:
        msg = step.record.msg
        parent = None
        if msg.parent_header:
            parent = dict(msg.parent_header)
            if parent.get("msg_id") in self.ids.forward:
                parent["msg_id"] = self.ids.forward[parent["msg_id"]]
        extra = {}
        subshell = msg.header.get("subshell_id")
        if subshell:
            extra["subshell_id"] = self.ids.forward.get(subshell, subshell)
        return Outgoing(
            step=step,
            channel=step.channel,
            msg_type=msg.msg_type,
            content=self.ids.to_replayed(msg.content),
            metadata=self.ids.to_replayed(msg.metadata),
            buffers=list(msg.buffers),
            parent=parent,
            header_extra=extra,
        )

    def needs_kernel_probe(self) -> bool:
        """A restart was replayed and answered: the runner must now make sure
        the new kernel is up (and call `kernel_back`) before anything else goes."""
        return self.restart is not None and self.complete(self.restart)

    def kernel_back(self) -> None:
        self.restart = None

    def sent(self, step: Step, new_msg_id: str) -> None:
        if step.msg_type == "shutdown_request" and step.record.msg.content.get("restart"):
            self.restart = step.seq
        self.ids.learn(step.msg_id, new_msg_id)
        self.request_of[new_msg_id] = step.seq
        self.sent_seqs.append(step.seq)
        self._sent.add(step.seq)
        self.position += 1
        if not self.complete(step.seq):
            self._incomplete.add(step.seq)

    def skip(self, step: Step, why: str) -> None:
        """The runner gave up on a step (e.g. nothing to answer)."""
        self.notes.append(f"@{step.seq} {step.describe()} not sent: {why}")
        self.position += 1

    # ------------------------------------------------------------ receiving

    def received(self, channel: Channel, msg: Message) -> None:
        request = self.request_of.get(msg.parent_id or "")
        t = msg.msg_type
        if request is None:
            return  # not ours (e.g. the runner's own warm-up)
        if self.restart is not None and request < self.restart:
            return  # the old kernel's teardown output (the plan leaves it out of the recording too)
        self.seen[request] = self.seen.get(request, 0) + 1
        if t == "status" and msg.content.get("execution_state") == "idle":
            self.idle.add(request)
        if t == "comm_open":
            self.ids.replayed_comm_open(request, msg)
        elif t == "input_request":
            queue = self._pending_inputs.get(request) or []
            if queue:
                self.ids.learn(queue.pop(0), msg.msg_id)
        elif t == "create_subshell_reply":
            queue = self._pending_subshells.get(request) or []
            if queue and msg.content.get("subshell_id"):
                self.ids.learn(queue.pop(0), str(msg.content["subshell_id"]))
        if t.endswith("_reply"):
            self.replied.add(request)
        self.actual[request].append(
            Message(msg.header, msg.parent_header, msg.metadata, self.ids.to_recorded(msg.content), msg.buffers)
        )
        if request in self._incomplete and self.complete(request):
            self._incomplete.discard(request)

    # ------------------------------------------------------------ progress

    def complete(self, request: int) -> bool:
        """The replayed request produced what completed it in the recording."""
        if request not in self._sent:
            return False
        done = self._done[request]
        if not done.idle and not done.reply:  # still running when the recording ended
            return self.seen.get(request, 0) >= done.count
        return (not done.idle or request in self.idle) and (not done.reply or request in self.replied)

    def finished(self) -> bool:
        return self.position >= len(self.plan.steps) and not self._incomplete

    def waiting_for(self) -> str:
        """What the replay waits for now, for timeouts and progress lines."""
        if self.position < len(self.plan.steps):
            step = self.plan.steps[self.position]
            why = self.blocked_on(step)
            if why:
                return f"{why} before sending @{step.seq} {step.describe()}"
        pending = [r for r in self.sent_seqs if r in self._incomplete]
        if pending:
            step = self.step_of[pending[0]]
            return f"{step.describe()} @{step.seq} to finish"
        return "nothing"

    def lost(self) -> list[Step]:
        """Requests the kernel never started although nothing else is running:
        none of their answers came, and every other request sent is complete or
        has not started either. Such a request was lost on its way (see
        `resent`); one queued behind a running cell is not lost."""
        silent = [r for r in self._incomplete if self.seen.get(r, 0) == 0]
        if not silent or any(self.seen.get(r, 0) > 0 for r in self._incomplete):
            return []
        return [self.step_of[r] for r in sorted(silent)]

    def resent(self, step: Step, new_msg_id: str) -> None:
        """`step` went again as `new_msg_id`; its answers count for the same request."""
        self.ids.learn(step.msg_id, new_msg_id)
        self.request_of[new_msg_id] = step.seq

    def idle_without_reply(self) -> set[int]:
        """Running requests the kernel has finished (idle) whose reply has not come."""
        return {r for r in self._incomplete if r in self.idle and self._done[r].reply and r not in self.replied}

    def give_up_reply(self, request: int, waited: float) -> None:
        """The kernel went idle after `request` and its reply never came (an
        interrupt landing inside ipykernel's handler ends a request that way): it
        counts as finished, and the comparison shows the missing reply."""
        self._incomplete.discard(request)
        step = self.step_of[request]
        self.notes.append(f"@{request} {step.describe()}: the kernel went idle and sent no reply in {waited:.0f} s")

    def open_ended(self) -> set[int]:
        """Running requests the recording itself cut short (no idle, no reply)."""
        return {r for r in self._incomplete if not self._done[r].idle and not self._done[r].reply}

    def stop_waiting(self, request: int, quiet: float) -> None:
        """A request the recording cut short got fewer messages than recorded and the
        kernel has said nothing for `quiet` seconds: the replay ends without them."""
        self._incomplete.discard(request)
        step = self.step_of[request]
        self.notes.append(f"@{request} {step.describe()}: still running where the recording ends; "
                          f"nothing more came for {quiet:.0f} s")

    def running(self) -> set[int]:
        """Requests sent and not complete yet (a live view: do not change it)."""
        return self._incomplete

    # ------------------------------------------------------------ results

    def digests(self) -> list[tuple[Step, Digest, Digest]]:
        """(step, recorded digest, replayed digest) for every step sent, in order."""
        rec_models: dict[str, str] = {}
        new_models: dict[str, str] = {}
        out = []
        for step in self.plan.steps:
            if step.seq not in self._sent:
                continue
            expected = digest(((r.seq, r.msg) for r in self.plan.expected[step.seq]), rec_models)
            actual = digest(((None, m) for m in self.actual[step.seq]), new_models)
            out.append((step, expected, actual))
        return out

    def _referenced_kernel_comms(self, step: Step) -> list[str]:
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, str):
                cid = value[10:] if value.startswith("IPY_MODEL_") else value
                if cid in self._kernel_comms and self._kernel_comms[cid] != step.seq:
                    found.append(cid)
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(k)
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(step.record.msg.content)
        return found


def recorded_kernel_messages(plan: Plan) -> list[tuple[int, Message]]:
    return [(r.seq, r.msg) for r in plan.records if isinstance(r, MessageRecord) and r.direction.value == "to_frontend"]
