"""Shared fixtures. Every test runs with its own Jupyter data/runtime/config
folders, so installed kernelspecs and connection files never leak out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from widgetspy.frontend import FrontendClient
from widgetspy.proxy.process import RecorderProcess


@pytest.fixture(scope="session", autouse=True)
def jupyter_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("jupyter")
    dirs = {
        "JUPYTER_DATA_DIR": root / "data",
        "JUPYTER_RUNTIME_DIR": root / "runtime",
        "JUPYTER_CONFIG_DIR": root / "config",
        "WIDGETSPY_RECORDINGS": root / "recordings",
    }
    old = {k: os.environ.get(k) for k in dirs}
    for k, v in dirs.items():
        v.mkdir(parents=True, exist_ok=True)
        os.environ[k] = str(v)
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    yield dirs
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def recorder(tmp_path: Path):
    """Start `widgetspy record --kernel python3` (a real kernel behind the proxy)."""
    started: list[RecorderProcess] = []

    def start(output: Path | None = None, **kw) -> RecorderProcess:
        rec = RecorderProcess(output or tmp_path / f"session{len(started)}.jsonl", **kw).start()
        started.append(rec)
        return rec

    yield start
    for rec in started:
        rec.__exit__(None, None, None)


@pytest.fixture
def frontend():
    """Connect FrontendClients to connection files; closed at teardown."""
    clients: list[FrontendClient] = []

    def connect(connection_file, **kw) -> FrontendClient:
        fe = FrontendClient(str(connection_file), **kw)
        clients.append(fe)
        return fe

    yield connect
    for fe in clients:
        fe.close()
