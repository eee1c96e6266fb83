"""Wrapper kernelspecs: "Python 3 (widgetspy)" records every kernel it starts.

The wrapper's argv runs the shim with the wrapped kernelspec's name, so any
front-end that can pick a kernelspec (JupyterLab, Notebook 7, VS Code,
nbclient, papermill) records without knowing about widgetspy.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from .shim import SHIM_MODULE

MARK = "widgetspy"


class KernelspecError(Exception):
    """str() is a one-line message."""


def wrapper_spec(wrapped: str, recordings: Path | None, ksm: KernelSpecManager) -> dict[str, Any]:
    try:
        base = ksm.get_kernel_spec(wrapped)
    except NoSuchKernel:
        names = ", ".join(sorted(ksm.find_kernel_specs())) or "none"
        raise KernelspecError(f"no kernelspec named {wrapped!r} (available: {names})") from None
    if any(SHIM_MODULE in a for a in base.argv):
        raise KernelspecError(f"kernelspec {wrapped!r} is already a widgetspy wrapper")
    argv = [sys.executable, "-m", SHIM_MODULE, "--kernel", wrapped]
    if recordings is not None:
        argv += ["--out-dir", str(recordings)]
    argv += ["-f", "{connection_file}"]
    return {
        "argv": argv,
        "display_name": f"{base.display_name} (widgetspy)",
        "language": base.language,
        "interrupt_mode": base.interrupt_mode,
        "metadata": {MARK: {"wraps": wrapped, "recordings": str(recordings) if recordings else None}},
    }


def install(
    wrapped: str = "python3",
    name: str | None = None,
    recordings: Path | None = None,
    user: bool = True,
    prefix: str | None = None,
) -> str:
    ksm = KernelSpecManager()
    spec = wrapper_spec(wrapped, recordings, ksm)
    name = name or f"{wrapped}-widgetspy"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name
        src.mkdir()
        (src / "kernel.json").write_text(json.dumps(spec, indent=1))
        try:
            return ksm.install_kernel_spec(str(src), kernel_name=name, user=user, prefix=prefix, replace=True)
        except OSError as exc:
            raise KernelspecError(f"cannot install kernelspec {name!r}: {exc.strerror or exc}") from None


def wrappers() -> dict[str, dict[str, Any]]:
    """Installed widgetspy wrappers: name -> {resource_dir, display_name, wraps, recordings}."""
    ksm = KernelSpecManager()
    out = {}
    for name, info in ksm.get_all_specs().items():
        spec = info.get("spec", {})
        meta = (spec.get("metadata") or {}).get(MARK)
        if meta is not None:
            out[name] = {
                "resource_dir": info.get("resource_dir"),
                "display_name": spec.get("display_name"),
                "wraps": meta.get("wraps"),
                "recordings": meta.get("recordings"),
            }
    return out


def remove(name: str) -> str:
    found = wrappers()
    if name not in found:
        raise KernelspecError(f"no widgetspy kernelspec named {name!r} (installed: {', '.join(found) or 'none'})")
    path = found[name]["resource_dir"]
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise KernelspecError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return path
