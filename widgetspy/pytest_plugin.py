"""widgetspy's pytest plugin (entry point `pytest11`: installing widgetspy is enough).

Two things, documented in docs/ci.md:

1. Recorded sessions as test items. `pytest --widgetspy-replay recordings/`
   (or the ini option `widgetspy_replay`, a list of folders, files or globs)
   collects every `*.jsonl` / `*.jsonl.gz` session there as one item that
   replays it against a fresh kernel (widgetspy.replay.runner) and fails with
   the divergence report and the new inspector findings at error level.
   Per-recording options come from a sidecar `NAME.jsonl.toml`.

2. The `widgetspy` fixture: a real kernel behind the recorder and a front-end
   (widgetspy.harness.WidgetSession), with snapshot modes
   `--widgetspy-mode=none|once|rewrite` against one stored recording per test
   (`recordings/<test module>/<test name>.jsonl`), compared offline with
   widgetspy.replay.sessions_diff.
"""

from __future__ import annotations

import difflib
import glob
import io
import os
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

MODES = ("none", "once", "rewrite")
DEFAULT_MODE = "none"
DEFAULT_RECORDINGS = "recordings"
FAIL_ON = ("error", "warning", "never")
SIDECAR_SUFFIX = ".toml"
SIDECAR_KEYS: dict[str, type | tuple[type, ...]] = {
    "kernel": str, "pace": str, "ignore": list, "timeout": (int, float), "fail_on": str,
    "include_debug": bool, "skip": str, "description": str,
}
MARK_KEYS = ("mode", "path", "kernel", "redact", "ignore", "snapshot", "timeout")

_STATE = pytest.StashKey["WidgetspyRun"]()


class WidgetspyUsageError(pytest.UsageError):
    pass


def _closest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_mode(mode: str, where: str) -> str:
    """A record mode, or a usage error naming the valid ones."""
    if mode not in MODES:
        raise WidgetspyUsageError(
            f"{where}: unknown widgetspy record mode {mode!r}{_closest(mode, MODES)}; use one of {', '.join(MODES)}")
    return mode


# ====================================================================== options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("widgetspy", "widgetspy: widget sessions as tests")
    group.addoption("--widgetspy-replay", action="append", default=[], metavar="PATH",
                    help="Collect the widgetspy sessions (*.jsonl) in PATH (a folder, file or glob) as test items "
                         "that replay them against a fresh kernel. Repeatable.")
    group.addoption("--widgetspy-mode", default=None, metavar="MODE",
                    help="Record mode of the widgetspy fixture: none (compare with the stored recording, never "
                         "write; the default), once (record when missing, else compare), rewrite (record again, "
                         "overwriting).")
    group.addoption("--widgetspy-recordings", default=None, metavar="DIR",
                    help=f"Where the widgetspy fixture keeps one recording per test [{DEFAULT_RECORDINGS}].")
    group.addoption("--widgetspy-kernel", default=None, metavar="NAME",
                    help="Kernelspec for the fixture and for replays [python3 / the recorded one].")
    group.addoption("--widgetspy-redact", action="append", default=[], metavar="REGEX",
                    help="Redact matches from what the fixture records (besides the kernel key and tokens).")
    parser.addini("widgetspy_replay", "Folders, files or globs of widgetspy sessions collected as replay tests "
                  "(when pytest runs without path arguments).", type="linelist", default=[])
    parser.addini("widgetspy_mode", "Record mode of the widgetspy fixture (none, once, rewrite).", default=DEFAULT_MODE)
    parser.addini("widgetspy_recordings", "Folder of the widgetspy fixture's recordings.", default=DEFAULT_RECORDINGS)
    parser.addini("widgetspy_kernel", "Kernelspec for the widgetspy fixture and replays.", default="")
    parser.addini("widgetspy_redact", "Regexes redacted from what the widgetspy fixture records.", type="linelist",
                  default=[])
    parser.addini("widgetspy_ignore", "Replay --ignore specs for the fixture's comparison (state.KEY, re:REGEX, a "
                  "category).", type="linelist", default=[])


@dataclass
class Settings:
    mode: str
    recordings: Path
    kernel: str
    redact: list[str]
    ignore: list[str]
    replay_paths: list[Path] = field(default_factory=list)  # files and folders whose sessions are items


def _settings(config: pytest.Config) -> Settings:
    return config.stash[_SETTINGS]


_SETTINGS = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "widgetspy(mode=, path=, kernel=, redact=, ignore=, snapshot=, timeout=): options of the "
                   "widgetspy fixture for this test (docs/ci.md).")
    root = config.rootpath
    cli_mode = config.getoption("widgetspy_mode")
    mode = check_mode(cli_mode, "--widgetspy-mode") if cli_mode is not None else check_mode(
        str(config.getini("widgetspy_mode")).strip() or DEFAULT_MODE, "ini option widgetspy_mode")
    recordings = Path(config.getoption("widgetspy_recordings") or config.getini("widgetspy_recordings"))
    settings = Settings(
        mode=mode,
        recordings=recordings if recordings.is_absolute() else root / recordings,
        kernel=config.getoption("widgetspy_kernel") or str(config.getini("widgetspy_kernel")).strip(),
        redact=[*config.getini("widgetspy_redact"), *config.getoption("widgetspy_redact")],
        ignore=list(config.getini("widgetspy_ignore")),
    )
    try:
        from .replay.compare import Ignores

        Ignores.parse(settings.ignore)
    except ValueError as exc:
        raise WidgetspyUsageError(f"ini option widgetspy_ignore: {exc}") from None
    cli_paths = _expand(config.getoption("widgetspy_replay"), Path(config.invocation_params.dir), "--widgetspy-replay")
    ini_paths = _expand(config.getini("widgetspy_replay"), root, "ini option widgetspy_replay", missing_ok=True)
    settings.replay_paths = [*cli_paths, *ini_paths]
    config.stash[_SETTINGS] = settings
    # Make the sessions part of what pytest collects. `--widgetspy-replay` alone runs just those
    # sessions; with path arguments they are added. The ini list joins only a run without path
    # arguments (like testpaths).
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    if cli_paths:
        config.args = ([*config.args] if explicit else []) + [str(p) for p in cli_paths]
    elif ini_paths and not explicit:
        config.args = [*config.args, *[str(p) for p in ini_paths]]


def _expand(specs: list[str], base: Path, where: str, missing_ok: bool = False) -> list[Path]:
    out: list[Path] = []
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        pattern = spec if os.path.isabs(spec) else str(base / spec)
        if glob.has_magic(pattern):
            out.extend(Path(p).resolve() for p in sorted(glob.glob(pattern, recursive=True)))
        elif Path(pattern).exists():
            out.append(Path(pattern).resolve())
        elif not missing_ok:
            raise WidgetspyUsageError(f"{where}: {spec}: no such file or folder")
    return list(dict.fromkeys(out))


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash.get(_SETTINGS, None)
    if s is None:
        return []
    line = f"widgetspy: mode={s.mode}, recordings={s.recordings}"
    if s.replay_paths:
        line += f", replaying sessions under {len(s.replay_paths)} path(s)"
    return [line]


# ====================================================================== recorded sessions as items


def is_session_file(path: Path) -> bool:
    return path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    s = parent.config.stash.get(_SETTINGS, None)
    if s is None or not s.replay_paths or not is_session_file(file_path):
        return None
    resolved = file_path.resolve()
    for p in s.replay_paths:
        if resolved == p or (p.is_dir() and resolved.is_relative_to(p)):
            return SessionFile.from_parent(parent, path=file_path)
    return None


class SessionFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ReplayItem.from_parent(self, name="replay")


class WidgetspyFailure(Exception):
    """A replay item or a fixture comparison failed; str() is the whole report."""


@dataclass
class Sidecar:
    path: Path | None
    values: dict[str, Any]


def read_sidecar(session: Path) -> Sidecar:
    """`NAME.jsonl.toml` next to `NAME.jsonl`: per-recording replay options."""
    side = session.with_name(session.name + SIDECAR_SUFFIX)
    if not side.exists():
        return Sidecar(None, {})
    try:
        values = tomllib.loads(side.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WidgetspyFailure(f"{side}: not valid TOML ({exc})") from None
    for key, value in values.items():
        if key not in SIDECAR_KEYS:
            raise WidgetspyFailure(f"{side}: unknown option {key!r}{_closest(key, list(SIDECAR_KEYS))}; "
                                   f"known: {', '.join(SIDECAR_KEYS)}")
        if not isinstance(value, SIDECAR_KEYS[key]) or isinstance(value, bool) != (SIDECAR_KEYS[key] is bool):
            raise WidgetspyFailure(f"{side}: {key} = {value!r} has the wrong type")
    if "fail_on" in values and values["fail_on"] not in FAIL_ON:
        raise WidgetspyFailure(f"{side}: fail_on must be one of {', '.join(FAIL_ON)}")
    if "ignore" in values and not all(isinstance(v, str) for v in values["ignore"]):
        raise WidgetspyFailure(f"{side}: ignore must be a list of strings")
    return Sidecar(side, values)


class ReplayItem(pytest.Item):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.add_marker("widgetspy")

    def runtest(self) -> None:
        from .inspectors import Severity
        from .replay.compare import Ignores
        from .replay.engine import PACES
        from .replay.runner import ReplayError, ReplayOptions, run_replay

        side = read_sidecar(self.path)
        v = side.values
        if "skip" in v:
            pytest.skip(f"{side.path}: {v['skip']}")
        s = _settings(self.config)
        if v.get("pace", "idle") not in PACES:
            raise WidgetspyFailure(f"{side.path}: pace must be one of {', '.join(PACES)}")
        try:
            Ignores.parse(v.get("ignore", []))
        except ValueError as exc:
            raise WidgetspyFailure(f"{side.path}: {exc}") from None
        opts = ReplayOptions(kernel=v.get("kernel") or s.kernel or None, pace=v.get("pace", "idle"),
                             ignore=list(v.get("ignore", [])), timeout=float(v.get("timeout", 60.0)),
                             include_debug=bool(v.get("include_debug", False)))
        try:
            result = run_replay(self.path, opts)
        except ReplayError as exc:
            raise WidgetspyFailure(f"widgetspy replay {self.path}: {exc}") from None
        fail_on = v.get("fail_on", "error")
        level = None if fail_on == "never" else Severity.parse(fail_on)

        def failing_of(r: Any) -> list[Any]:
            return [f for f in r.new_findings if level is not None and f.severity >= level]

        failing = failing_of(result)
        if failing and not result.divergences:
            # Confirm with a second replay: the recorder's capture thread gets each channel's copy
            # through its own pipe, so a front-end message can land before the kernel message it
            # reacts to and a rule sees an artifact (e.g. WS201/WS204). Divergences are not affected.
            try:
                again = run_replay(self.path, opts)
            except ReplayError as exc:
                raise WidgetspyFailure(f"widgetspy replay {self.path} (second run): {exc}") from None
            seen = {(f.rule_id, f.model_name) for f in failing_of(again)}
            failing = [f for f in failing if (f.rule_id, f.model_name) in seen]
            if not failing:
                return
        if result.divergences or failing:
            text = _replay_report(result)
            if failing and not result.divergences:
                text += f"\nfailed: {len(failing)} new finding(s) at or above {fail_on} (sidecar fail_on)"
            raise WidgetspyFailure(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, WidgetspyFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"widgetspy replay {self.path.name}"


def _replay_report(result: Any) -> str:
    """The same report `widgetspy replay` prints, as plain text."""
    from rich.console import Console

    from .cli.replay import report

    buf = io.StringIO()
    report(Console(file=buf, width=200, no_color=True, highlight=False, emoji=False), result)
    return buf.getvalue().rstrip()


# ====================================================================== the fixture

# The fixture's object is a widgetspy.harness.WidgetSession (imported when a test asks for it, so a
# pytest run that does not use widgetspy does not import jupyter_client) with five more attributes:
#   mode: none | once | rewrite        recording: the stored recording for this test (Path)
#   compare: compare this run with `recording` when the test body ends
#   write: store this run as `recording` when the test body ends     ignore: the comparison's --ignore specs


@dataclass
class WidgetspyRun:
    ws: Any  # WidgetSession
    finished: bool = False

    def finish(self, passed: bool) -> None:
        """End of the test body: stop the kernel, then compare or store."""
        if self.finished:
            return
        self.finished = True
        ws = self.ws
        ws.stop()
        if not passed:
            return
        if ws.write:
            ws.recording.parent.mkdir(parents=True, exist_ok=True)
            tmp = ws.recording.with_name(ws.recording.name + ".tmp")
            shutil.copyfile(ws.path, tmp)
            os.replace(tmp, ws.recording)  # a true overwrite, atomic
        if ws.compare:
            from .replay.sessions_diff import diff_session_files

            diff = diff_session_files(ws.recording, ws.path, ws.ignore)
            if not diff.identical:
                pytest.fail(
                    f"widgetspy: this test's widget traffic differs from its recording {ws.recording}\n"
                    f"{diff.report()}\n"
                    f"the new run is in {ws.path}; if the change is intended, record again with "
                    f"--widgetspy-mode=rewrite", pytrace=False)


@pytest.fixture
def widgetspy_config() -> dict[str, Any]:
    """Override to set the widgetspy fixture's options for a module or folder
    (keys as the `widgetspy` marker's: mode, path, kernel, redact, ignore, snapshot, timeout)."""
    return {}


def _test_options(request: pytest.FixtureRequest, config_fixture: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    sources = [("widgetspy_config", config_fixture)]
    for mark in reversed(list(request.node.iter_markers("widgetspy"))):  # closest mark last: it wins
        if mark.args:
            raise WidgetspyUsageError(f"{request.node.nodeid}: @pytest.mark.widgetspy takes keyword arguments")
        sources.append(("@pytest.mark.widgetspy", mark.kwargs))
    for where, values in sources:
        for key, value in values.items():
            if key not in MARK_KEYS:
                raise WidgetspyUsageError(f"{where}: unknown option {key!r}{_closest(key, MARK_KEYS)}; "
                                          f"known: {', '.join(MARK_KEYS)}")
            if key in ("redact", "ignore"):
                merged[key] = [*merged.get(key, []), *([value] if isinstance(value, str) else value)]
            else:
                merged[key] = value
    return merged


def recording_path(settings: Settings, request: pytest.FixtureRequest, path: str | os.PathLike[str] | None) -> Path:
    """`<recordings>/<test module>/<test name>.jsonl`, or the `path` option
    (relative to the recordings folder)."""
    if path:
        p = Path(path)
        return p if p.is_absolute() else settings.recordings / p
    module = Path(str(request.node.path)).stem
    name = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
    return settings.recordings / module / f"{name}.jsonl"


@pytest.fixture
def widgetspy(request: pytest.FixtureRequest, widgetspy_config: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real kernel behind the recorder and a front-end driving it (docs/ci.md).

    With a stored recording for the test (mode none or once), the test's traffic
    is compared with it when the test body ends, and the test fails with the
    divergence report."""
    s = _settings(request.config)
    opts = _test_options(request, widgetspy_config)
    mode = s.mode
    if request.config.getoption("widgetspy_mode") is None and "mode" in opts:
        mode = check_mode(str(opts["mode"]), f"{request.node.nodeid}: widgetspy mode")
    snapshot = bool(opts.get("snapshot", True))
    recording = recording_path(s, request, opts.get("path"))
    stored = recording.exists()
    if snapshot and mode == "none" and not stored:
        pytest.fail(f"widgetspy: no recording for this test at {recording}, and --widgetspy-mode=none never "
                    f"records; record it with: pytest --widgetspy-mode=once {request.node.nodeid}", pytrace=False)
    from .harness import WidgetSession

    out = tmp_path_factory.mktemp("widgetspy") / "run.jsonl"
    ws = WidgetSession(out, kernel=str(opts.get("kernel") or s.kernel or "python3"),
                               redact=[*s.redact, *opts.get("redact", [])], timeout=float(opts.get("timeout", 60.0)))
    ws.mode, ws.recording = mode, recording
    ws.compare = snapshot and stored and mode in ("none", "once")
    ws.write = snapshot and (mode == "rewrite" or (mode == "once" and not stored))
    ws.ignore = [*s.ignore, *opts.get("ignore", [])]
    ws.start()
    run = WidgetspyRun(ws)
    request.node.stash[_STATE] = run
    try:
        yield ws
    finally:
        run.finish(passed=False)  # no-op when the test body ended normally (already finished)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    except BaseException:
        run = item.stash.get(_STATE, None)
        if run is not None:
            run.finish(passed=False)
        raise
    run = item.stash.get(_STATE, None)
    if run is not None:
        run.finish(passed=True)  # may fail the test with the divergence report
    return result
