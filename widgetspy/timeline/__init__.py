"""The timeline of widget model state (sans-IO).

Feed session records one at a time, then ask: which models existed, every
change (seq, time, direction, keys old -> new, cause), each model's state at
any seq as the kernel and as the front-end saw it, the references between
models, the views that showed them, their custom messages, and the standard
widget-state document. See docs/timeline.md.

    tl = Timeline()
    for rec in records:
        tl.feed(rec)
    tl.state(model_id, at=120, side=Side.FRONTEND)
"""

from .changes import (
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
    change_to_json,
    jsonable,
)
from .references import Reference, find_references
from .registry import ADOPTED, FRONTEND_OPENED, KERNEL_OPENED, Comm, Model
from .state_document import (
    StateDocumentError,
    decode_entry_state,
    model_entry,
    state_document,
    state_schema,
    validate,
    validation_errors,
)
from .timeline import HistoryNotKept, Timeline, build_timeline

__all__ = [
    "ADOPTED",
    "FRONTEND_OPENED",
    "KERNEL_OPENED",
    "MISSING",
    "Cause",
    "Change",
    "ChangeKind",
    "Comm",
    "CustomMessage",
    "Epoch",
    "HistoryNotKept",
    "KeyChange",
    "Model",
    "Problem",
    "Reference",
    "Side",
    "StateDocumentError",
    "Timeline",
    "View",
    "build_timeline",
    "change_to_json",
    "jsonable",
    "decode_entry_state",
    "find_references",
    "model_entry",
    "state_document",
    "state_schema",
    "validate",
    "validation_errors",
]
