"""The standard widget state document (`application/vnd.jupyter.widget-state+json`,
format 2.0) built from timeline states, and its validation against the
vendored v2 schema (`widget_state_v2.schema.json`).
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from ..buffers import BufferPathError, put_buffers, remove_buffers

VERSION_MAJOR = 2
VERSION_MINOR = 0
SCHEMA_RESOURCE = "widget_state_v2.schema.json"


class StateDocumentError(ValueError):
    """A state document that does not validate; str() is one line per problem."""


def model_entry(state: Mapping[str, Any], *, model_name: str | None = None, model_module: str | None = None,
                model_module_version: str | None = None) -> dict[str, Any] | None:
    """One `state[model_id]` entry: identity, JSON state, base64 buffers with
    paths relative to the state. None when the model's class is unknown."""
    name = state.get("_model_name", model_name)
    module = state.get("_model_module", model_module)
    version = state.get("_model_module_version", model_module_version)
    if not isinstance(name, str) or not isinstance(module, str):
        return None
    json_state, paths, buffers = remove_buffers(dict(state))
    entry: dict[str, Any] = {"model_name": name, "model_module": module}
    if isinstance(version, str):
        entry["model_module_version"] = version
    entry["state"] = json_state
    if buffers:
        entry["buffers"] = [
            {"path": path, "data": base64.b64encode(buf).decode("ascii"), "encoding": "base64"}
            for path, buf in zip(paths, buffers)
        ]
    return entry


def state_document(states: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The whole document for model id -> state (binary values as bytes)."""
    out: dict[str, Any] = {}
    for model_id, state in states.items():
        entry = model_entry(state)
        if entry is not None:
            out[model_id] = entry
    return {"version_major": VERSION_MAJOR, "version_minor": VERSION_MINOR, "state": out}


def decode_entry_state(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `model_entry`: the state with its buffers put back as bytes."""
    paths, buffers = [], []
    for b in entry.get("buffers") or []:
        data = b.get("data", "")
        try:
            raw = base64.b64decode(data) if b.get("encoding") == "base64" else bytes.fromhex(data)
        except (ValueError, binascii.Error):
            raise StateDocumentError(f"buffer at {b.get('path')!r} is not valid {b.get('encoding')}") from None
        paths.append(list(b.get("path") or []))
        buffers.append(raw)
    try:
        return put_buffers(dict(entry.get("state") or {}), paths, buffers)
    except BufferPathError as exc:
        raise StateDocumentError(str(exc)) from None


@lru_cache(maxsize=1)
def state_schema() -> dict[str, Any]:
    """The vendored ipywidgets v2 state schema."""
    text = resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


def validation_errors(doc: Any) -> list[str]:
    """Problems of `doc` against the v2 state schema, one line each ([] = valid)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(state_schema())
    errors = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(document)"
        errors.append(f"{where}: {err.message}")
    return errors


def validate(doc: Any) -> None:
    """Raise StateDocumentError if `doc` does not validate."""
    errors = validation_errors(doc)
    if errors:
        raise StateDocumentError("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
