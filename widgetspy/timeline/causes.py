"""Requests to the kernel, remembered so that what the kernel sends back can
name its cause (`parent_header.msg_id` -> the request).

Bounded: a request is kept while it runs and for a while after its
`status: idle` (late messages from threads can still point at it), so memory
does not grow with the length of the session.
"""

from __future__ import annotations

from collections import OrderedDict

from ..message import Direction
from ..session.records import MessageRecord
from .changes import Cause

FINISHED_KEPT = 4096


class CauseBook:
    def __init__(self, finished_kept: int = FINISHED_KEPT) -> None:
        self._running: dict[str, Cause] = {}
        self._finished: OrderedDict[str, Cause] = OrderedDict()
        self._finished_kept = finished_kept

    def request(self, rec: MessageRecord) -> Cause | None:
        """Remember a message sent to the kernel; returns its Cause."""
        msg = rec.msg
        msg_id = msg.msg_id
        if rec.direction is not Direction.TO_KERNEL or not msg_id:
            return None
        msg_type = msg.msg_type
        code = cell_id = method = None
        if msg_type == "execute_request":
            code = msg.content.get("code")
            cell_id = msg.metadata.get("cellId")
        elif msg_type == "comm_msg":
            method = msg.comm_method
        cause = Cause(  # (positional: one is made per request)
            msg_id,  # msg_id
            msg_type,  # msg_type
            rec.seq,  # seq
            rec.t,  # t
            rec.direction,  # direction
            rec.channel,  # channel
            code if isinstance(code, str) else None,  # code
            cell_id if isinstance(cell_id, str) else None,  # cell_id
            msg.comm_id,  # comm_id
            method,  # method
            rec.peer,  # peer
        )
        self._running[msg_id] = cause
        return cause

    def get(self, msg_id: str | None) -> Cause | None:
        if not msg_id:
            return None
        return self._running.get(msg_id) or self._finished.get(msg_id)

    def finished(self, msg_id: str | None) -> None:
        """The kernel reported idle for this request."""
        cause = self._running.pop(msg_id, None) if msg_id else None
        if cause is None:
            return
        self._finished[cause.msg_id] = cause
        while len(self._finished) > self._finished_kept:
            self._finished.popitem(last=False)

    def forget_running(self) -> None:
        """A new kernel: nothing that was running will finish."""
        for msg_id in list(self._running):
            self.finished(msg_id)
