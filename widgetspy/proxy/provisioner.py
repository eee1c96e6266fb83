"""A jupyter_client kernel provisioner that records every kernel it starts.

`widgetspy record -- COMMAND` runs COMMAND with
``JUPYTER_DEFAULT_PROVISIONER_NAME=widgetspy-provisioner``; every kernel the
command's jupyter_client starts then goes through here. We keep everything the
local provisioner does (ports, connection file, signals) and only put the shim
in front of the kernel command: the shim binds the ports the connection file
names and starts the real command on private ports. We return the connection
info unchanged, so `_reconcile_connection_info` finds the file as written and the
client connects to the shim, never to the kernel.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from .shim import SHIM_MODULE

PROVISIONER_NAME = "widgetspy-provisioner"


class RecordingProvisioner(LocalProvisioner):  # type: ignore[misc]
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        km = self.parent
        spec = self.kernel_spec
        wrapped = [
            sys.executable,
            "-m",
            SHIM_MODULE,
            "-f",
            km.connection_file,
            "--mode",
            "provisioner",
            "--interrupt-mode",
            getattr(spec, "interrupt_mode", "signal") or "signal",
            "--language",
            getattr(spec, "language", "") or "",
            "--display-name",
            getattr(spec, "display_name", "") or "",
        ]
        if getattr(self, "kernel_id", ""):
            wrapped += ["--kernel-id", str(self.kernel_id)]
        if getattr(km, "kernel_name", ""):
            wrapped += ["--kernel", km.kernel_name]
        out_dir = os.environ.get("WIDGETSPY_RECORDINGS")
        if out_dir:
            wrapped += ["--out-dir", out_dir]
        return await super().launch_kernel([*wrapped, "--", *cmd], **kwargs)
