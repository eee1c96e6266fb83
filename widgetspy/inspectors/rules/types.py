"""WS5xx: state values of core widget models checked against the trait
metadata of the ipywidgets installed where the check runs.

The spec is built by introspection, not copied: every class in ipywidgets'
widget registry (`Widget.widget_types`), every `sync=True` trait, mapped from
the trait's type (Int, Float, Bool, Unicode, Enum, Instance(Widget), tuples
and lists with their item traits, Date/Time/Datetime, bytes, Union, allow_none)
to a small check function. Built once per process, lazily; without ipywidgets
these rules check nothing.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from ...message import WIDGET_TARGET, Direction
from ..base import Rule, Severity, rule
from ..context import MISSING, Context
from ._util import comm_id, content, major, short
from .patterns import CORE_MODULES

TO_FRONTEND = Direction.TO_FRONTEND

# kinds of problems, one rule each
TYPE, ENUM, REFERENCE, REF_CLASS, DATETIME = "type", "enum", "reference", "ref-class", "datetime"

Check = Callable[[Any, list], None]  # check(value, out): appends (kind, text, extra) tuples


@dataclass
class ModelSpec:
    module: str
    name: str
    version: str
    cls: Any
    attrs: dict[str, Check] = field(default_factory=dict)
    # attr -> (the value classes its check always accepts, the check), set by `installed_spec`: the
    # engine skips the check for those classes (one lookup per key); every other value goes through it
    checks: dict[str, tuple[frozenset[type], Check]] = field(default_factory=dict)


@dataclass
class InstalledSpec:
    ipywidgets_version: str
    models: dict[tuple[str, str], ModelSpec]
    module_versions: dict[str, str]
    by_class: dict[Any, tuple[str, str]]


DATE_KEYS = ("year", "month", "date")
TIME_KEYS = ("hours", "minutes", "seconds", "milliseconds")


def _number(v: Any) -> bool:
    return (v.__class__ is int or v.__class__ is float) and v.__class__ is not bool


def _dict_check(keys: tuple[str, ...], what: str) -> Check:
    def check(value: Any, out: list) -> None:
        if value.__class__ is not dict:
            out.append((DATETIME, f"{what} must be an object with {', '.join(keys)}, got {short(value, 30)}", None))
            return
        bad = [k for k in keys if not _number(value.get(k))]
        if bad:
            out.append((DATETIME, f"{what} lacks numeric {', '.join(bad)}: {short(value, 60)}", None))

    return check


def _passing(check: Any) -> frozenset[type]:
    """The value classes `check` accepts whatever the value (empty: none known)."""
    return getattr(check, "passes", frozenset())


def _compile(trait: Any, widget_cls: Any) -> Check | None:
    """A check function for one trait (None: anything goes). The function's `passes` attribute
    names value classes it never reports on (e.g. `int` for an Int trait), so callers may skip it."""
    import traitlets

    names = {c.__name__ for c in type(trait).__mro__}
    allow_none = bool(getattr(trait, "allow_none", False))
    inner: Check | None

    if "Datetime" in names or "NaiveDatetime" in names:
        inner = _dict_check(DATE_KEYS + TIME_KEYS, "a Datetime")
    elif type(trait).__name__ == "Date":
        inner = _dict_check(DATE_KEYS, "a Date")
    elif type(trait).__name__ == "Time":
        inner = _dict_check(TIME_KEYS, "a Time")
    elif "ByteMemoryView" in names or isinstance(trait, traitlets.Bytes):
        def inner(value: Any, out: list) -> None:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                out.append((TYPE, f"expected binary data (a buffer), got {short(value, 30)}", None))
        inner.passes = frozenset({bytes, bytearray, memoryview})  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Bool):
        def inner(value: Any, out: list) -> None:
            if value.__class__ is not bool:
                out.append((TYPE, f"expected a bool, got {short(value, 30)}", None))
        inner.passes = frozenset({bool})  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Int):
        def inner(value: Any, out: list) -> None:
            if value.__class__ is not int:
                out.append((TYPE, f"expected an int, got {short(value, 30)}", None))
        inner.passes = frozenset({int})  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Float):
        def inner(value: Any, out: list) -> None:
            if not _number(value):
                out.append((TYPE, f"expected a number, got {short(value, 30)}", None))
        inner.passes = frozenset({int, float})  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Enum):
        values = list(trait.values or ())
        if isinstance(trait, traitlets.CaselessStrEnum):
            lowered = {v.lower() for v in values if isinstance(v, str)}

            def inner(value: Any, out: list) -> None:
                if not (isinstance(value, str) and value.lower() in lowered):
                    out.append((ENUM, f"{short(value, 30)} is not one of {short(values, 60)}", None))
        else:
            def inner(value: Any, out: list) -> None:
                if value not in values or value.__class__ is bool:
                    out.append((ENUM, f"{short(value, 30)} is not one of {short(values, 60)}", None))
    elif isinstance(trait, traitlets.Unicode):
        def inner(value: Any, out: list) -> None:
            if value.__class__ is not str:
                out.append((TYPE, f"expected a string, got {short(value, 30)}", None))
        inner.passes = frozenset({str})  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Union):
        parts = [_compile(t, widget_cls) for t in trait.trait_types]
        if any(p is None for p in parts):
            inner = None
        else:
            def inner(value: Any, out: list) -> None:
                for part in parts:
                    trial: list = []
                    part(value, trial)  # type: ignore[misc]
                    if not trial:
                        return
                out.append((TYPE, f"{short(value, 30)} matches none of the union's types", None))
            # a value one part accepts outright passes the union
            inner.passes = frozenset().union(*(_passing(p) for p in parts))  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Tuple) and getattr(trait, "_traits", None):
        items = [_compile(t, widget_cls) for t in trait._traits]

        def inner(value: Any, out: list) -> None:
            if value.__class__ is not list:
                out.append((TYPE, f"expected an array, got {short(value, 30)}", None))
                return
            for item, check in zip(value, items):
                if check is not None:
                    check(item, out)
    elif isinstance(trait, traitlets.Container):
        item_trait = getattr(trait, "_trait", None)
        item = _compile(item_trait, widget_cls) if item_trait is not None else None

        def inner(value: Any, out: list) -> None:
            if value.__class__ is not list:
                out.append((TYPE, f"expected an array, got {short(value, 30)}", None))
                return
            if item is not None:
                for v in value:
                    item(v, out)
    elif isinstance(trait, traitlets.Dict):
        def inner(value: Any, out: list) -> None:
            if value.__class__ is not dict:
                out.append((TYPE, f"expected an object, got {short(value, 30)}", None))
        inner.passes = frozenset({dict})  # type: ignore[attr-defined]
    elif isinstance(trait, traitlets.Instance):
        klass = trait.klass
        if isinstance(klass, str):
            try:
                trait._resolve_classes()
                klass = trait.klass
            except Exception:
                klass = None
        from ipywidgets import Widget

        if isinstance(klass, type) and issubclass(klass, Widget):
            def inner(value: Any, out: list) -> None:
                if value.__class__ is not str or not value.startswith("IPY_MODEL_"):
                    out.append((REFERENCE, f"expected an IPY_MODEL_ reference, got {short(value, 30)}", None))
                    return
                if klass is not Widget:
                    out.append((REF_CLASS, "", (value[10:], klass)))
        else:
            inner = None
    else:
        inner = None
    if inner is None:
        return None
    passes = _passing(inner)
    if allow_none:
        check_not_none = inner

        def with_none(value: Any, out: list) -> None:
            if value is not None:
                check_not_none(value, out)

        with_none.passes = passes | {type(None)}  # type: ignore[attr-defined]
        return with_none

    def no_none(value: Any, out: list, _inner: Check = inner) -> None:
        if value is None:
            out.append((TYPE, "null is not allowed", None))
            return
        _inner(value, out)

    no_none.passes = passes  # type: ignore[attr-defined]
    return no_none


@functools.lru_cache(maxsize=1)
def installed_spec() -> InstalledSpec | None:
    """The per-model attribute checks of the installed ipywidgets (None if not installed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ipywidgets
            from ipywidgets import Widget

            registry = Widget.widget_types
            items = list(registry.items())
    except Exception:  # pragma: no cover - ipywidgets is optional
        return None
    models: dict[tuple[str, str], ModelSpec] = {}
    by_class: dict[Any, tuple[str, str]] = {}
    module_versions: dict[str, str] = {}
    for key, cls in items:
        module, version, name = key[0], key[1], key[2]
        spec = ModelSpec(module, name, version, cls)
        for attr, trait in cls.class_traits(sync=True).items():
            try:
                check = _compile(trait, cls)
            except Exception:  # pragma: no cover - an exotic trait: do not check it
                check = None
            if check is not None:
                spec.attrs[attr] = check
                spec.checks[attr] = (_passing(check), check)
        models[(module, name)] = spec
        by_class[cls] = (module, name)
        module_versions.setdefault(module, version)
    return InstalledSpec(getattr(ipywidgets, "__version__", "?"), models, module_versions, by_class)


NO_RESULTS: tuple = ()


class _Engine:
    """Type-checks each state once; the WS50x rules read their kind of result."""

    def __init__(self) -> None:
        self.seq = -1
        self.results: Any = NO_RESULTS  # (kind, model id, key, text, extra) tuples
        self.spec: Any = MISSING
        self._models: dict[Any, ModelSpec | None] = {}  # comm (once its identity is known) -> its spec

    def run(self, rec: Any, ctx: Context) -> Any:
        if rec.seq == self.seq:
            return self.results
        self.seq = rec.seq
        self.results = NO_RESULTS
        spec = self.spec
        if spec is MISSING:
            spec = self.spec = installed_spec()
        if spec is None:
            return NO_RESULTS
        d = ctx.data
        t = ctx.msg_type
        if t != "comm_open" and ctx.method != "update_states":  # update, echo_update: the comm's model
            state = ctx.state
            if state is None:
                return NO_RESULTS
            cid = ctx.cid
            comm = ctx.cur_comm if cid is not None else ctx.comms.get("")
            if comm is None:
                return NO_RESULTS
            model = self._models.get(comm, MISSING)
            if model is MISSING:
                model = spec.models.get((comm.model_module, comm.model_name))  # type: ignore[arg-type]
                if comm.identity:  # learnt once, never changes
                    self._models[comm] = model
            if model is None:
                return NO_RESULTS
            if d.get("buffer_paths") or rec.msg.buffers:
                state = Context._state(d, rec.msg.buffers) or state
            self._check(model, cid, state)
            return self.results
        pairs: list[tuple[str | None, Any, dict[str, Any]]] = []
        if t == "comm_open":
            if content(rec).get("target_name") != WIDGET_TARGET:
                return NO_RESULTS
            state = Context._state(d, rec.msg.buffers)
            if state is None:
                return NO_RESULTS
            pairs.append((ctx.cid, (state.get("_model_module"), state.get("_model_name")), state))
        else:
            states = d.get("states")
            if not isinstance(states, dict):
                return NO_RESULTS
            for mid, entry in states.items():
                if isinstance(entry, dict) and isinstance(entry.get("state"), dict):
                    s = entry["state"]
                    pairs.append((mid, (entry.get("model_module"), entry.get("model_name")), s))
        for mid, key, state in pairs:
            model = spec.models.get(key)  # type: ignore[arg-type]
            if model is not None:
                self._check(model, mid, state)
        return self.results

    def _check(self, model: ModelSpec, mid: str | None, state: dict[str, Any]) -> None:
        checks = model.checks
        for attr, value in state.items():
            entry = checks.get(attr)
            if entry is None or value.__class__ in entry[0]:
                continue
            out: list = []
            entry[1](value, out)
            if out:
                if self.results is NO_RESULTS:
                    self.results = []
                for kind, text, extra in out:
                    self.results.append((kind, mid, attr, text, extra))


class TypeRule(Rule):
    """WS501-WS505 share one type check per message: the first of them in the
    checker (the leader) runs it and hands each result to the rule of its kind."""

    category = "state types"
    severity = Severity.WARNING
    kind = TYPE
    messages = ("comm_open", "comm_msg:update", "comm_msg:echo_update", "comm_msg:update_states@F")

    def __init__(self) -> None:
        self._by_kind: dict[str, TypeRule] = {self.kind: self}
        self._engine = _Engine()

    def bind(self, rules: list[Rule]) -> None:
        mine = [r for r in rules if isinstance(r, TypeRule)]
        if mine and mine[0] is not self:
            self.messages = ()  # the leader reports for this rule
            return
        self._by_kind = {r.kind: r for r in mine} or {self.kind: self}

    def on_message(self, rec: Any, ctx: Context) -> None:
        results = self._engine.run(rec, ctx)
        if not results:
            return
        by_kind = self._by_kind
        for kind, mid, attr, text, extra in results:
            target = by_kind.get(kind)
            if target is not None:
                target.report(ctx, rec, mid, attr, text, extra)

    def report(self, ctx: Context, rec: Any, mid: str | None, attr: str, text: str, extra: Any) -> None:
        ctx.report(self, rec.seq, f"{attr}: {text}", rec=rec, comm_id=mid)


_SRC = ("protocol-notes §7 (per-model attribute spec, `jupyterwidgetmodels.latest.json`); §6 invariant 32; "
        "checked against the installed ipywidgets' traits")


@rule
class StateType(TypeRule):
    id = "WS501"
    name = "state-type"
    kind = TYPE
    title = "Core widget state value has the wrong JSON type"
    description = (
        "Values of core models (`@jupyter-widgets/base`, `/controls`, `/output`) must have the type their trait "
        "declares: int (not float, not bool), number, bool, string, array (with typed items), object, binary "
        "(sent as a buffer), a union of these, and null only where the trait allows none. The Python side "
        "raises a TraitError on a front-end update of the wrong type (the value is lost); the JS views "
        "misbehave on a kernel value of the wrong type."
    )
    source = _SRC


@rule
class StateEnum(TypeRule):
    id = "WS502"
    name = "state-enum"
    kind = ENUM
    title = "Core widget state value is not one of the trait's enum values"
    description = (
        "Enum traits (`orientation`, `button_style`, `bar_style`, `behavior`, Layout's CSS keywords, ...) accept "
        "only their listed values (case-insensitively for caseless enums). A kernel rejects another value with "
        "a TraitError; a front-end renders a default instead."
    )
    source = _SRC


@rule
class StateReference(TypeRule):
    id = "WS503"
    name = "state-reference"
    kind = REFERENCE
    title = "Widget-typed attribute is not an IPY_MODEL_ reference"
    description = (
        "Attributes that hold widgets (`layout`, `style`, `children` items, Link `source`/`target`) travel as "
        "`\"IPY_MODEL_<id>\"` strings; anything else (a repr such as `\"Layout()\"`, a bare id) cannot be "
        "unpacked into a model and the widget fails to render."
    )
    source = _SRC + "; protocol-notes §3.6"


@rule
class ReferenceClass(TypeRule):
    id = "WS504"
    name = "reference-class"
    kind = REF_CLASS
    title = "Reference to a model of the wrong class"
    description = (
        "A widget-typed attribute names the class it accepts: `layout` a `LayoutModel`, a slider's `style` a "
        "`SliderStyleModel`, a Controller's `axes` `ControllerAxisModel`s. A reference to an open core model of "
        "another class is accepted by the wire but breaks the view (styles and layouts are read attribute by "
        "attribute). References to custom (non-core) models are not judged."
    )
    source = _SRC + " (reference `widget` classes)"

    def report(self, ctx: Context, rec: Any, mid: str | None, attr: str, text: str, extra: Any) -> None:
        target, klass = extra
        comm = ctx.comms.get(target)
        spec = installed_spec()
        if comm is None or spec is None or not comm.model_name:
            return
        model = spec.models.get((comm.model_module or "", comm.model_name))
        if model is None or issubclass(model.cls, klass):
            return
        ctx.report(self, rec.seq, f"{attr} refers to a {comm.model_name} ({target[:8]}); it accepts "
                   f"{klass.__name__} models", rec=rec, comm_id=mid)


@rule
class StateDatetime(TypeRule):
    id = "WS505"
    name = "state-datetime"
    kind = DATETIME
    title = "Date/Time/Datetime value is not the serialized dict"
    description = (
        "ipywidgets serializes dates as `{year, month, date}` (month 0-based), times as `{hours, minutes, "
        "seconds, milliseconds}` and datetimes as both together (UTC), with numbers; an ISO string or a dict "
        "missing a field makes the date pickers fail to parse the value."
    )
    source = _SRC + " (`trait_types.py:118-320`)"


@rule
class UnknownCoreModel(Rule):
    id = "WS506"
    name = "unknown-core-model"
    severity = Severity.WARNING
    category = "state types"
    title = "Core-module model class that ipywidgets does not have"
    description = (
        "A `comm_open` names a model in a core module (`@jupyter-widgets/base`, `/controls`, `/output`) that the "
        "installed ipywidgets does not register, while the module's major version matches. A front-end with the "
        "same widget version cannot load it (\"Failed to load model class\"). When the major version differs the "
        "class list may differ legitimately: see WS507."
    )
    source = "protocol-notes §3.1, §7; bug-patterns B1"
    messages = ("comm_open",)

    def on_message(self, rec: Any, ctx: Context) -> None:
        d = ctx.data
        state = d.get("state")
        if content(rec).get("target_name") != WIDGET_TARGET or not isinstance(state, dict):
            return
        module, name = state.get("_model_module"), state.get("_model_name")
        if module not in CORE_MODULES or not isinstance(name, str):
            return
        spec = installed_spec()
        if spec is None or (module, name) in spec.models:
            return
        installed = spec.module_versions.get(module)
        if installed and major(installed) != major(state.get("_model_module_version")):
            return
        ctx.report(self, rec.seq, f"{module} has no {name} in ipywidgets {spec.ipywidgets_version}", rec=rec,
                   comm_id=comm_id(rec))


@rule
class ModuleVersionNote(Rule):
    id = "WS507"
    name = "module-version-differs"
    severity = Severity.INFO
    category = "state types"
    title = "The recording's widget module version differs from the installed ipywidgets"
    description = (
        "The state type checks (WS501-WS506) use the trait metadata of the ipywidgets installed where the check "
        "runs. When a recording's core module version (`_model_module_version`) differs from the installed one, "
        "attributes may have been added, removed or retyped between the versions, so type findings for that "
        "module should be read with that in mind (or re-run the check with the recording's ipywidgets "
        "installed). Reported once per module and version."
    )
    source = "protocol-notes §7 (to regenerate the spec for another ipywidgets version)"
    messages = ("comm_open",)

    def __init__(self) -> None:
        self._told: set[tuple[str, str]] = set()

    def on_message(self, rec: Any, ctx: Context) -> None:
        d = ctx.data
        state = d.get("state")
        if not isinstance(state, dict):
            return
        module, version = state.get("_model_module"), state.get("_model_module_version")
        if module not in CORE_MODULES or not isinstance(version, str) or (module, version) in self._told:
            return
        spec = installed_spec()
        if spec is None:
            return
        self._told.add((module, version))
        installed = spec.module_versions.get(module)
        if installed is not None and installed != version:
            ctx.report(self, rec.seq, f"the recording uses {module} {version}; type checks use ipywidgets "
                       f"{spec.ipywidgets_version}'s {installed}", rec=rec, comm_id=comm_id(rec))

