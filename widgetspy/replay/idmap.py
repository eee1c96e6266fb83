"""Recorded ids <-> replayed ids. Sans-IO.

A fresh kernel makes fresh ids: message ids (ours and its), comm ids of the
models it creates, subshell ids. `IdMap` learns the pairs as the replay runs
and rewrites what the front-end sends next (comm ids, `IPY_MODEL_`
references, widget-view model ids, `update_states` keys and buffer paths,
parent headers, `subshell_id`), and rewrites the kernel's answers back into
recorded ids for the comparison.

Kernel-created comms are paired by the order of their `comm_open`s within the
same parent request, among those with the same target and model class.
"""

from __future__ import annotations

from typing import Any, Hashable

from ..message import IPY_MODEL_PREFIX, Message


def comm_class(msg: Message) -> tuple[str, str]:
    """(target_name, model class) of a comm_open, the key comms are paired by."""
    target = msg.content.get("target_name") if isinstance(msg.content, dict) else None
    state = msg.comm_data.get("state")
    name = state.get("_model_name") if isinstance(state, dict) else None
    return (str(target), str(name or ""))


class IdMap:
    def __init__(self) -> None:
        self.forward: dict[str, str] = {}  # recorded id -> replayed id (msg ids, comm ids, subshells)
        self.backward: dict[str, str] = {}  # replayed id -> recorded id
        # recorded kernel comm_opens waiting for their replayed twin: request -> [(class, comm_id)]
        self._expected_opens: dict[Hashable, list[tuple[tuple[str, str], str]]] = {}

    def learn(self, recorded: str | None, replayed: str | None) -> None:
        if recorded and replayed and recorded != replayed:
            self.forward[recorded] = replayed
            self.backward[replayed] = recorded

    def expect_comm_opens(self, request: Hashable, opens: list[Message]) -> None:
        """The kernel comm_opens a request produced in the recording, in order."""
        self._expected_opens[request] = [(comm_class(m), m.comm_id or "") for m in opens]

    def replayed_comm_open(self, request: Hashable, msg: Message) -> str | None:
        """Pair a replayed kernel comm_open with a recorded one; returns the recorded id."""
        if msg.comm_id in self.backward:
            return self.backward[msg.comm_id]
        queue = self._expected_opens.get(request, [])
        cls = comm_class(msg)
        for i, (rec_cls, rec_id) in enumerate(queue):
            if rec_cls == cls:
                del queue[i]
                self.learn(rec_id, msg.comm_id)
                return rec_id
        return None

    def knows(self, recorded: str) -> bool:
        return recorded in self.forward

    # ------------------------------------------------------------ rewriting

    def to_replayed(self, value: Any) -> Any:
        """Rewrite recorded ids inside a front-end message's content for the new kernel."""
        return _rewrite(value, self.forward)

    def to_recorded(self, value: Any) -> Any:
        """Rewrite replayed ids inside a kernel message back into recorded ids."""
        return _rewrite(value, self.backward)


def _rewrite(value: Any, table: dict[str, str]) -> Any:
    if not table:
        return value
    if isinstance(value, str):
        if value in table:
            return table[value]
        if value.startswith(IPY_MODEL_PREFIX) and value[len(IPY_MODEL_PREFIX):] in table:
            return IPY_MODEL_PREFIX + table[value[len(IPY_MODEL_PREFIX):]]
        return value
    if isinstance(value, dict):
        return {(table.get(k, k) if isinstance(k, str) else k): _rewrite(v, table) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, table) for v in value]
    return value
