"""The timeline of widget model state: every rule of the rebuild lives here.

Feed session records in capture order (`feed`), then ask questions (`state`,
`changes`, `references`, `models`, ...). No sockets, no files.

Two projections are kept per model (see docs/timeline.md):

- the **kernel view**: what the kernel believes. Kernel messages (IOPub) change
  it when they are seen (the kernel made the change just before sending).
  A front-end message (shell) changes it when the kernel starts processing
  it: at the IOPub `status: busy` parented to it (or the first IOPub message
  parented to it, if that busy is missing). An `echo_update` is not applied
  to it when the front-end update it echoes was seen (the kernel already
  holds those values); a corrective `update` that follows is.
- the **front-end view**: what a front-end (JupyterLab's widget manager)
  believes. Its own messages change it when sent; kernel messages when they
  arrive. `echo_update` keys are dropped, as ipywidgets' JS model does, when
  the front-end is waiting for the echo of a newer update of that key.

Full states (the reply to `request_state`, `update_states` on the control
comm) replace a side's state wholesale: resync points. Comms belong to a
kernel epoch; a restart (kernel_restarted/kernel_exited events, or kernel
messages with a new `header.session`) closes every comm of the old epoch.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..codec.jsontext import JSONTextError, dumps
from ..message import COMM_MSG_TYPES, CONTROL_TARGET, WIDGET_TARGET, Channel, Direction, widget_view_model_id
from ..session.format import EncodedBuffers
from ..session.lean import LeanMessageRecord
from ..session.records import (
    KERNEL_EXITED,
    KERNEL_RESTARTED,
    KERNEL_STARTED,
    EventRecord,
    MessageRecord,
    Record,
    UnparsedRecord,
)
from . import widget_data
from .causes import CauseBook
from .changes import (
    BOTH_SIDES,
    MISSING,
    Cause,
    Change,
    ChangeKind,
    CustomMessage,
    Epoch,
    KeyChange,
    Problem,
    Side,
    View,
)
from .references import Reference, find_references
from .registry import ADOPTED, FRONTEND_OPENED, KERNEL_OPENED, Comm, Model

NEW_KERNEL_SESSION = "new kernel session"


class HistoryNotKept(ValueError):
    """A question about the past asked of a timeline built with history=False."""


class Timeline:
    """Rebuild widget model state from session records.

    `history=False` keeps only the current state (no change log, views or
    custom message lists), so memory does not grow with the session's length.
    """

    def __init__(self, *, history: bool = True) -> None:
        self.history = history
        self.epochs: list[Epoch] = []
        self.problems: list[Problem] = []
        self.causes = CauseBook()
        self.views: list[View] = []
        self.last_seq = 0
        self.last_t = 0.0
        self.records = 0
        self.messages = 0
        self.unparsed = 0
        self._comms: dict[str, Comm] = {}  # comm id -> the latest comm with that id
        self._all: list[Comm] = []  # every comm ever seen, in open order
        self._changes: list[Change] = []
        # front-end messages the kernel has not started processing yet: msg_id -> record
        self._pending: dict[str, MessageRecord] = {}

    # ================================================================ feeding

    def feed(self, rec: Record | LeanMessageRecord) -> None:
        """Take the next record of the session (records must come in seq order
        and must not be changed afterwards). A `LeanMessageRecord`
        (`open_session(path, lean=True)`) counts as a MessageRecord: it has the
        same attributes and accessors."""
        self.records += 1
        seq = rec.seq
        if seq > self.last_seq:
            self.last_seq = seq
        t = rec.t
        if t > self.last_t:
            self.last_t = t
        cls = rec.__class__
        if cls is LeanMessageRecord or cls is MessageRecord or isinstance(rec, MessageRecord):
            self.messages += 1
            if rec.direction is Direction.TO_FRONTEND:
                self._from_kernel(rec)
            else:
                self._to_kernel(rec)
        elif isinstance(rec, EventRecord):
            self._event(rec)
        elif isinstance(rec, UnparsedRecord):
            self.unparsed += 1

    def feed_all(self, records: Iterable[Record]) -> "Timeline":
        for rec in records:
            self.feed(rec)
        return self

    # ---------------------------------------------------------------- epochs

    @property
    def epoch(self) -> Epoch | None:
        """The current kernel epoch (None before the first kernel sign of life)."""
        return self.epochs[-1] if self.epochs else None

    def _start_epoch(self, seq: int, t: float, session: str | None, why: str) -> Epoch:
        ep = Epoch(index=len(self.epochs), start_seq=seq, start_t=t, kernel_session=session, started_by=why)
        self.epochs.append(ep)
        return ep

    def _live_epoch(self, seq: int, t: float) -> Epoch:
        ep = self.epoch
        if ep is None or ep.end_seq is not None:
            ep = self._start_epoch(seq, t, None, "first message" if ep is None else "message after exit")
        return ep

    def _end_epoch(self, seq: int, t: float, reason: str) -> None:
        ep = self.epoch
        if ep is None or ep.end_seq is not None:
            return
        ep.end_seq, ep.end_reason = seq, reason
        for comm in self._all:
            if comm.epoch != ep.index:
                continue
            sides = tuple(s for s in BOTH_SIDES if s in comm.opened and s not in comm.closed)
            if sides:
                self._close(comm, sides, seq, t, reason, Direction.TO_FRONTEND, seq, None, None, note=reason)
        for msg_id, pending in list(self._pending.items()):
            self._problem(seq, f"{pending.msg.msg_type} @{pending.seq} was never processed by the kernel ({reason})",
                          pending.msg.comm_id)
            del self._pending[msg_id]
        self.causes.forget_running()

    def _event(self, rec: EventRecord) -> None:
        if rec.event == KERNEL_EXITED:
            self._end_epoch(rec.seq, rec.t, KERNEL_EXITED)
        elif rec.event == KERNEL_RESTARTED:
            ep = self.epoch
            if ep is not None and ep.end_seq is None and ep.started_by == NEW_KERNEL_SESSION:
                ep.started_by += f" ({KERNEL_RESTARTED} @{rec.seq})"  # the new kernel spoke first
                return
            self._end_epoch(rec.seq, rec.t, KERNEL_RESTARTED)
            self._start_epoch(rec.seq, rec.t, None, KERNEL_RESTARTED)
        elif rec.event == KERNEL_STARTED:
            ep = self.epoch
            if ep is None or ep.end_seq is not None:
                self._start_epoch(rec.seq, rec.t, None, KERNEL_STARTED)

    def _kernel_epoch(self, rec: MessageRecord) -> Epoch:
        """The epoch of a kernel message; a new kernel session id starts a new one."""
        session = rec.msg.session
        ep = self.epochs[-1] if self.epochs else None
        if ep is not None and ep.end_seq is None and (session == ep.kernel_session or not session):
            return ep  # (the common case, first)
        ep = self._live_epoch(rec.seq, rec.t)
        if session:
            if ep.kernel_session is None:
                ep.kernel_session = session
            elif session != ep.kernel_session:
                self._end_epoch(rec.seq, rec.t, NEW_KERNEL_SESSION)
                ep = self._start_epoch(rec.seq, rec.t, session, NEW_KERNEL_SESSION)
        return ep

    # ---------------------------------------------------------------- front-end -> kernel

    def _to_kernel(self, rec: MessageRecord) -> None:
        msg = rec.msg
        cause = self.causes.request(rec)
        t = msg.msg_type
        if t not in COMM_MSG_TYPES:
            return
        cid = msg.comm_id
        if cid is None:
            self._problem(rec.seq, f"{msg.msg_type} without a comm_id")
            return
        if rec.channel is not Channel.SHELL:
            self._problem(rec.seq, f"front-end {msg.msg_type} on {rec.channel.value} (kernels only read comms on shell)", cid)
            return
        ep = self._live_epoch(rec.seq, rec.t)
        if t == "comm_open":
            target = msg.content.get("target_name")
            target = target if isinstance(target, str) else "?"
            comm = self._new_comm(cid, target, ep, FRONTEND_OPENED, rec)
            comm.opened[Side.FRONTEND] = rec.seq
            if isinstance(comm, Model):
                state = self._state_of(rec, cid) or {}
                comm.learn_class(state)
                self._apply(comm, (Side.FRONTEND,), ChangeKind.OPEN, state, rec, rec.seq, rec.t, cause, replace=True)
            self._pending[msg.msg_id or f"@{rec.seq}"] = rec
            return
        comm = self._comms.get(cid)
        method = msg.comm_method
        if comm is None:
            state = self._state_of(rec, cid) if method == "update" else None
            if state is None:
                self._problem(rec.seq, f"front-end {msg.msg_type} {method or ''} on unknown comm".rstrip(), cid)
                return
            comm = self._adopt(cid, ep, rec, (Side.FRONTEND,))
        if t == "comm_close":
            if Side.FRONTEND not in comm.closed:
                self._close(comm, (Side.FRONTEND,), rec.seq, rec.t, FRONTEND_OPENED, rec.direction, rec.seq,
                            msg.msg_id, cause)
            self._pending[msg.msg_id or f"@{rec.seq}"] = rec
            return
        if comm.__class__ is not Model and not isinstance(comm, Model):
            return
        comm.count_message(method)
        if method == "update":
            state = self._state_of(rec, cid)
            if state is None:
                self._problem(rec.seq, "front-end update without a state dict", cid)
                return
            msg_id = msg.msg_id
            expected_echo = comm.expected_echo
            echo_id = msg_id or ""
            for key in state:
                expected_echo[key] = echo_id
            self._apply(comm, (Side.FRONTEND,), ChangeKind.UPDATE, state, rec, rec.seq, rec.t, cause)
            self._pending[msg_id or f"@{rec.seq}"] = rec
        elif method == "custom":
            self._custom(comm, rec, cause)

    def _kernel_processes(self, msg_id: str | None, seq: int, t: float) -> None:
        """The kernel started processing a front-end message: apply it to the kernel view."""
        if not msg_id:
            return
        rec = self._pending.pop(msg_id, None)
        if rec is None:
            return
        msg = rec.msg
        cid = msg.comm_id or ""
        comm = self._comms.get(cid)
        if comm is None:
            return
        cause = self.causes.get(msg_id) if self.history else None  # (only the change log names it)
        msg_type = msg.msg_type
        if msg_type == "comm_open":
            comm.opened[Side.KERNEL] = seq
            if isinstance(comm, Model):
                state = self._state_of(rec, cid, report=False) or {}
                self._apply(comm, (Side.KERNEL,), ChangeKind.OPEN, state, rec, seq, t, cause, replace=True,
                            note="kernel processing")
        elif msg_type == "comm_close":
            if Side.KERNEL in comm.opened and Side.KERNEL not in comm.closed:
                self._close(comm, (Side.KERNEL,), seq, t, FRONTEND_OPENED, rec.direction, rec.seq, msg.msg_id, cause,
                            note="kernel processing")
        elif msg_type == "comm_msg" and isinstance(comm, Model) and msg.comm_method == "update":
            state = self._state_of(rec, cid, report=False)
            if state is not None and Side.KERNEL in comm.opened and Side.KERNEL not in comm.closed:
                self._apply(comm, (Side.KERNEL,), ChangeKind.UPDATE, state, rec, seq, t, cause,
                            note="kernel processing")

    # ---------------------------------------------------------------- kernel -> front-end

    def _from_kernel(self, rec: MessageRecord) -> None:
        msg = rec.msg
        # the epoch: the common case (same kernel session, still alive) inline
        session = msg.session
        ep = self.epochs[-1] if self.epochs else None
        if ep is None or ep.end_seq is not None or (session and session != ep.kernel_session):
            ep = self._kernel_epoch(rec)
        parent = msg.parent_id
        if parent in self._pending:
            self._kernel_processes(parent, rec.seq, rec.t)
        t = msg.msg_type
        if t == "status":
            content = msg.content
            if content.__class__ is dict and content.get("execution_state") == "idle":
                self.causes.finished(parent)
            return
        if t in ("display_data", "execute_result", "update_display_data"):
            self._view(rec, ep)
            return
        if t not in COMM_MSG_TYPES:
            return
        cid = msg.comm_id
        if cid is None:
            self._problem(rec.seq, f"kernel {t} without a comm_id")
            return
        cause = self.causes.get(parent)
        if t == "comm_open":
            target = msg.content.get("target_name")
            target = target if isinstance(target, str) else "?"
            old = self._comms.get(cid)
            if old is not None and old.epoch == ep.index and not old.is_closed:
                self._problem(rec.seq, "comm opened again while open", cid)
            comm = self._new_comm(cid, target, ep, KERNEL_OPENED, rec)
            comm.opened[Side.KERNEL] = comm.opened[Side.FRONTEND] = rec.seq
            if isinstance(comm, Model):
                state = self._state_of(rec, cid) or {}
                comm.learn_class(state)
                self._apply(comm, BOTH_SIDES, ChangeKind.OPEN, state, rec, rec.seq, rec.t, cause, replace=True)
            return
        comm = self._comms.get(cid)
        method = msg.comm_method
        if t == "comm_close":
            if comm is None:
                self._problem(rec.seq, "kernel comm_close for an unknown comm", cid)
                return
            sides = tuple(s for s in BOTH_SIDES if s in comm.opened and s not in comm.closed)
            if sides:
                self._close(comm, sides, rec.seq, rec.t, KERNEL_OPENED, rec.direction, rec.seq, msg.msg_id, cause)
            return
        # comm_msg
        if method == "update_states":
            self._update_states(rec, ep, cause)
            return
        if comm is None:
            state = self._state_of(rec, cid) if method in ("update", "echo_update") else None
            if state is None:
                self._problem(rec.seq, f"kernel comm_msg {method or ''} on unknown comm".rstrip(), cid)
                return
            comm = self._adopt(cid, ep, rec, BOTH_SIDES)
        if comm.__class__ is not Model and not isinstance(comm, Model):
            return
        comm.count_message(method)
        if method == "update":
            state = self._state_of(rec, cid)
            if state is None:
                self._problem(rec.seq, "kernel update without a state dict", cid)
                return
            if comm.view_module is None and "_model_name" in state:
                comm.learn_class(state)
            sides = BOTH_SIDES if not comm.closed and len(comm.opened) == 2 else self._open_sides(comm)
            if cause is not None and cause.method == "request_state" and cause.comm_id == cid:
                self._apply(comm, sides, ChangeKind.RESYNC, state, rec, rec.seq, rec.t, cause, replace=True,
                            note="request_state reply")
                return
            if not self.history:
                self._apply_state_only(comm, sides, state, False)
                return
            note = ""
            if cause is not None and cause.direction is Direction.TO_KERNEL and cause.msg_type == "comm_msg":
                note = "reaction to a front-end message"
                if cause.comm_id == cid and cause.method == "update":
                    note = "correction of the front-end update"
            self._apply(comm, sides, ChangeKind.UPDATE, state, rec, rec.seq, rec.t, cause, note=note)
        elif method == "echo_update":
            state = self._state_of(rec, cid)
            if state is None:
                self._problem(rec.seq, "echo_update without a state dict", cid)
                return
            self._echo(comm, rec, state, cause)
        elif method == "custom":
            self._custom(comm, rec, cause)

    def _echo(self, model: Model, rec: MessageRecord, state: dict[str, Any], cause: Cause | None) -> None:
        parent = rec.msg.parent_id or ""
        # front-end: drop the keys for which a newer echo of its own is awaited
        kept: dict[str, Any] = {}
        ignored: list[str] = []
        expected_echo = model.expected_echo
        for key, value in state.items():
            expected = expected_echo.get(key)
            if expected is None:
                kept[key] = value
            elif expected != parent:
                ignored.append(key)
            else:
                del expected_echo[key]
                kept[key] = value
        seen_parent = cause is not None and cause.direction is Direction.TO_KERNEL
        if Side.FRONTEND in model.opened and Side.FRONTEND not in model.closed:
            self._apply(model, (Side.FRONTEND,), ChangeKind.ECHO, kept, rec, rec.seq, rec.t, cause,
                        ignored=tuple(ignored), note="older echo ignored" if ignored else "")
        if not seen_parent and Side.KERNEL in model.opened:
            # echo of an update from a front-end this tap did not see: the kernel holds these values
            self._apply(model, (Side.KERNEL,), ChangeKind.ECHO, state, rec, rec.seq, rec.t, cause,
                        note="echo of an update this tap did not see")

    def _update_states(self, rec: MessageRecord, ep: Epoch, cause: Cause | None) -> None:
        problems: list[str] = []
        states = widget_data.update_states(rec.msg, problems)
        for p in problems:
            self._problem(rec.seq, f"update_states: {p}", rec.msg.comm_id)
        for model_id, state in states.items():
            model = self._comms.get(model_id)
            if model is None or (model.is_closed and model.epoch != ep.index):
                model = self._adopt(model_id, ep, rec, BOTH_SIDES)
            if not isinstance(model, Model):
                self._problem(rec.seq, "update_states names a comm that is not a widget", model_id)
                continue
            model.learn_class(state)
            sides = self._open_sides(model) or (Side.KERNEL,)
            note = "update_states" + (" (comm closed)" if model.is_closed else "")
            self._apply(model, sides, ChangeKind.RESYNC, state, rec, rec.seq, rec.t, cause, replace=True, note=note)

    def _view(self, rec: MessageRecord, ep: Epoch) -> None:
        model_id = widget_view_model_id(rec.msg)
        if model_id is None:
            return
        model = self._comms.get(model_id)
        known = isinstance(model, Model) and model.open_at(None, Side.KERNEL)
        transient = rec.msg.content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        view = View(rec.seq, rec.t, model_id, rec.msg.msg_type, ep.index, display_id,
                    self.causes.get(rec.msg.parent_id), known)
        if model_id and not known:
            self._problem(rec.seq, f"{rec.msg.msg_type} shows a model that is not open", model_id)
        if self.history:
            self.views.append(view)
            if isinstance(model, Model):
                model.views.append(view)

    def _custom(self, model: Model, rec: MessageRecord, cause: Cause | None) -> None:
        if not self.history:
            return  # (kept only with the history)
        content = rec.msg.comm_data.get("content")
        try:
            size = len(dumps(content, strict=rec.strict_json))
        except (TypeError, ValueError, JSONTextError):
            size = 0
        buffers = rec.msg.buffers
        # sizes without decoding the bytes, when they came from a file
        sizes = buffers.sizes if isinstance(buffers, EncodedBuffers) else [len(b) for b in buffers]
        model.custom.append(CustomMessage(
            rec.seq, rec.t, model.comm_id, rec.direction, content, size, tuple(sizes), rec.size, cause))

    # ---------------------------------------------------------------- helpers

    def _new_comm(self, cid: str, target: str, ep: Epoch, opened_by: str, rec: MessageRecord) -> Comm:
        cls = Model if target == WIDGET_TARGET else Comm
        comm = cls(comm_id=cid, target_name=target, epoch=ep.index, opened_by=opened_by,
                   open_msg_seq=rec.seq, open_t=rec.t)
        self._comms[cid] = comm
        self._all.append(comm)
        if isinstance(comm, Model):
            ep.models.append(cid)
        return comm

    def _adopt(self, cid: str, ep: Epoch, rec: MessageRecord, sides: tuple[Side, ...]) -> Model:
        """A widget model first seen in a comm_msg (the recording began after its comm_open)."""
        model = self._new_comm(cid, WIDGET_TARGET, ep, ADOPTED, rec)
        assert isinstance(model, Model)
        for side in sides:
            model.opened[side] = rec.seq
        self._problem(rec.seq, "model adopted: its comm_open was not recorded", cid)
        return model

    @staticmethod
    def _open_sides(model: Comm) -> tuple[Side, ...]:
        # A kernel message changes both views; a comm the front-end closed still
        # changes the kernel's (ipywidgets keeps sending on it).
        if not model.closed and len(model.opened) == 2:
            return BOTH_SIDES
        return tuple(s for s in BOTH_SIDES if s in model.opened and (s not in model.closed or s is Side.KERNEL))

    def _state_of(self, rec: MessageRecord, cid: str, *, report: bool = True) -> dict[str, Any] | None:
        problems: list[str] = []
        state = widget_data.widget_state(rec.msg, problems)
        if report and problems:
            for p in problems:
                self._problem(rec.seq, p, cid)
        return state

    def _problem(self, seq: int, text: str, model_id: str | None = None) -> None:
        self.problems.append(Problem(seq, text, model_id))

    def _apply(
        self,
        model: Model,
        sides: tuple[Side, ...],
        kind: ChangeKind,
        new: dict[str, Any],
        rec: MessageRecord,
        seq: int,
        t: float,
        cause: Cause | None,
        *,
        replace: bool = False,
        ignored: tuple[str, ...] = (),
        note: str = "",
    ) -> None:
        if not self.history:
            self._apply_state_only(model, sides, new, replace)
            return
        per_side: list[tuple[Side, tuple[KeyChange, ...]]] = []
        for side in sides:
            current = model.state[side]
            keys = [KeyChange(k, current.get(k, MISSING), v) for k, v in new.items()]
            if replace:
                keys.extend(KeyChange(k, v, MISSING) for k, v in current.items() if k not in new)
                model.state[side] = dict(new)
            else:
                current.update(new)
            per_side.append((side, tuple(keys)))
        if not per_side:
            return
        # one Change when every side saw the same old -> new, else one per side
        groups: list[tuple[list[Side], tuple[KeyChange, ...]]] = []
        for side, keys in per_side:
            for g in groups:
                if g[1] == keys:
                    g[0].append(side)
                    break
            else:
                groups.append(([side], keys))
        for group_sides, keys in groups:
            self._record(Change(
                seq=seq, t=t, model_id=model.comm_id, epoch=model.epoch, sides=tuple(group_sides), kind=kind,
                direction=rec.direction, msg_seq=rec.seq, msg_id=rec.msg.msg_id, keys=keys, cause=cause,
                ignored=ignored, note=note), model)

    @staticmethod
    def _apply_state_only(model: Model, sides: tuple[Side, ...], new: dict[str, Any], replace: bool) -> None:
        """`_apply` without a change log: the same states and change counts,
        no KeyChange/Change objects. Two sides make one change when both saw
        the same old values (what `_apply` groups on), else one each."""
        states = model.state
        count = len(sides)
        if count == 2:
            a, b = states[sides[0]], states[sides[1]]
            if a is b:
                count = 1
            elif not replace:  # (_same_olds inline: the common kernel update)
                for key in new:
                    x, y = a.get(key, MISSING), b.get(key, MISSING)
                    if x is not y and not x == y:
                        break
                else:
                    count = 1
            elif _same_olds(a, b, new, replace):
                count = 1
        for side in sides:
            if replace:
                states[side] = dict(new)
            else:
                states[side].update(new)
        model.change_count += count

    def _close(self, comm: Comm, sides: tuple[Side, ...], seq: int, t: float, by: str, direction: Direction,
               msg_seq: int, msg_id: str | None, cause: Cause | None, note: str = "") -> None:
        for side in sides:
            comm.closed[side] = seq
        if comm.closed_by is None:
            comm.closed_by, comm.close_msg_seq = by, msg_seq
        if isinstance(comm, Model):
            self._record(Change(seq=seq, t=t, model_id=comm.comm_id, epoch=comm.epoch, sides=sides,
                                kind=ChangeKind.CLOSE, direction=direction, msg_seq=msg_seq, msg_id=msg_id,
                                cause=cause, note=note), comm)

    def _record(self, change: Change, model: Model) -> None:
        model.change_count += 1
        if self.history:
            model.changes.append(change)
            self._changes.append(change)

    # ================================================================ queries

    def final_seq(self) -> int:
        """The last seq at which the last kernel was alive: when the session ends
        with the kernel's exit (which closes every comm), the seq just before that
        exit, so "the state at the end" still shows the models it held."""
        ep = self.epoch
        if ep is not None and ep.end_seq is not None and ep.end_reason != NEW_KERNEL_SESSION:
            return max(ep.start_seq, ep.end_seq - 1)
        return self.last_seq

    @property
    def comms(self) -> list[Comm]:
        """Every comm seen (all targets, all epochs), in open order."""
        return list(self._all)

    @property
    def models(self) -> list[Model]:
        """Every widget model seen (all epochs, closed ones too), in open order."""
        return [c for c in self._all if isinstance(c, Model)]

    def model(self, model_id: str) -> Model | None:
        """The latest model with this id."""
        comm = self._comms.get(model_id)
        return comm if isinstance(comm, Model) else None

    def find(self, name: str) -> list[Model]:
        """Models of a class: `IntSlider` or `IntSliderModel`."""
        return [m for m in self.models if m.matches_name(name)]

    def control_comms(self) -> list[Comm]:
        return [c for c in self._all if c.target_name == CONTROL_TARGET]

    def changes(
        self,
        *,
        model_id: str | None = None,
        name: str | None = None,
        key: str | None = None,
        since: int | None = None,
        until: int | None = None,
        side: Side | None = None,
    ) -> list[Change]:
        """The change log, filtered: by model id or class name, by key, by seq
        range (inclusive), by side."""
        self._need_history("the change log")
        ids = None
        if name is not None:
            ids = {m.comm_id for m in self.find(name)}
        out = []
        for ch in self._changes:
            if model_id is not None and ch.model_id != model_id:
                continue
            if ids is not None and ch.model_id not in ids:
                continue
            if since is not None and ch.seq < since:
                continue
            if until is not None and ch.seq > until:
                continue
            if side is not None and side not in ch.sides:
                continue
            if key is not None and ch.key(key) is None and key not in ch.ignored:
                continue
            out.append(ch)
        return out

    def state(self, model_id: str, *, at: int | None = None, side: Side = Side.KERNEL) -> dict[str, Any] | None:
        """A model's state on `side` right after record `at` (None: the end),
        binary values as bytes. None when the side did not know the model then.
        A closed model keeps its last state."""
        model = self.model(model_id)
        if model is None:
            return None
        return self._state(model, at, side)

    def _state(self, model: Model, at: int | None, side: Side) -> dict[str, Any] | None:
        if not model.existed_at(at, side):
            return None
        if at is None or at >= self.last_seq:
            return dict(model.state[side])
        self._need_history("the state at an earlier seq")
        state: dict[str, Any] = {}
        for ch in model.changes:
            if ch.seq > at:
                break
            if side not in ch.sides:
                continue
            for kc in ch.keys:
                if kc.new is MISSING:
                    state.pop(kc.key, None)
                else:
                    state[kc.key] = kc.new
        return state

    def states(
        self, *, at: int | None = None, side: Side = Side.KERNEL, include_closed: bool = False
    ) -> dict[str, tuple[Model, dict[str, Any]]]:
        """model id -> (model, state) for the models open on `side` at `at`
        (with `include_closed`, also those closed before, with their last state)."""
        out: dict[str, tuple[Model, dict[str, Any]]] = {}
        for model in self.models:
            if not (model.open_at(at, side) or (include_closed and model.existed_at(at, side))):
                continue
            state = self._state(model, at, side)
            if state is not None:
                out[model.comm_id] = (model, state)
        return out

    def references(self, *, at: int | None = None, side: Side = Side.KERNEL) -> list[Reference]:
        """Every IPY_MODEL_ reference in the states of the models open on
        `side` at `at`; `resolved` says whether the target was open there too."""
        open_ids = {m.comm_id for m in self.models if m.open_at(at, side)}
        out = []
        for model_id, (_model, state) in self.states(at=at, side=side).items():
            for path, target in find_references(state):
                out.append(Reference(model_id, path, target, target in open_ids))
        return out

    def custom_messages(self, model_id: str | None = None) -> list[CustomMessage]:
        self._need_history("custom messages")
        models = [self.model(model_id)] if model_id else self.models
        return sorted((c for m in models if m is not None for c in m.custom), key=lambda c: c.seq)

    def _need_history(self, what: str) -> None:
        if not self.history:
            raise HistoryNotKept(f"{what} needs a Timeline(history=True)")


def _same_olds(a: dict[str, Any], b: dict[str, Any], new: dict[str, Any], replace: bool) -> bool:
    """Would `_apply` build equal KeyChange tuples for states `a` and `b`?
    (Values compare as tuples do: identity, then ==.)"""
    for key in new:
        x, y = a.get(key, MISSING), b.get(key, MISSING)
        if x is not y and not x == y:
            return False
    if replace:
        return [(k, v) for k, v in a.items() if k not in new] == [(k, v) for k, v in b.items() if k not in new]
    return True


def build_timeline(records: Iterable[Record], *, history: bool = True) -> Timeline:
    return Timeline(history=history).feed_all(records)
