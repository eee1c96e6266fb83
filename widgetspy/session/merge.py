"""Merge the per-tap files of one kernel into one session.

`widgetspy record --web` records two ways at once: the kernel provisioner's
shim writes the ZMQ tap of each kernel start, and the mitmproxy addon writes the
websocket tap of each kernel. Both stamp `recorder.monotonic_t0` (the
recorder's CLOCK_MONOTONIC origin, shared by every process on the machine) and
`recorder.kernel_id` into their headers, so the records can be put on one time
axis: `merge_parts` interleaves them by time (each part keeps its own order),
renumbers `seq` 1..N and writes one header listing both taps. Messages seen on
both taps keep their msg_id; `session.taps.correlate` pairs them.

`merge_parts` is sans-IO; `merge_files` and `group_parts` are the file shell.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import heapq
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .files import SessionWriter, open_session
from .records import Record, SessionHeader
from .taps import PREFERENCE


class MergeError(ValueError):
    """Parts that cannot be merged; str() is one line."""


def _t0(header: SessionHeader) -> float | None:
    value = header.recorder.get("monotonic_t0")
    return float(value) if isinstance(value, (int, float)) else None


def _created_epoch(header: SessionHeader) -> float:
    try:
        return _dt.datetime.fromisoformat(header.created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def kernel_id_of(header: SessionHeader) -> str | None:
    kid = header.recorder.get("kernel_id") or header.kernel.get("id")
    return str(kid) if kid else None


def merge_parts(
    parts: Sequence[tuple[SessionHeader, Iterable[Record]]], *, names: Sequence[str] = ()
) -> tuple[SessionHeader, Iterator[Record]]:
    """One header and the interleaved, renumbered records of several parts.

    Times are aligned on `recorder.monotonic_t0` when every part has it, else on
    the header's `created` (millisecond resolution)."""
    if not parts:
        raise MergeError("nothing to merge")
    headers = [h for h, _ in parts]
    t0s = [_t0(h) for h in headers]
    if any(t is None for t in t0s):
        t0s = [_created_epoch(h) for h in headers]
        clock = "created"
    else:
        clock = "monotonic"
    base = min(t0s)  # type: ignore[type-var]
    offsets = [t - base for t in t0s]  # type: ignore[operator]

    taps: list[str] = []
    for h in headers:
        for tap in h.taps:
            if tap not in taps:
                taps.append(tap)
    taps.sort(key=lambda t: PREFERENCE.index(t) if t in PREFERENCE else 99)
    kernel: dict[str, Any] = {}
    for h in sorted(headers, key=lambda h: 0 if "zmq" in h.taps else 1):
        for k, v in h.kernel.items():
            kernel.setdefault(k, v)
    kids = {kernel_id_of(h) for h in headers} - {None}
    if len(kids) > 1:
        raise MergeError(f"parts belong to different kernels: {', '.join(sorted(kids))}")  # type: ignore[arg-type]
    if kids:
        kernel.setdefault("id", next(iter(kids)))
    header = SessionHeader(
        format_version=headers[0].format_version,
        widgetspy_version=headers[0].widgetspy_version,
        created=min((h.created for h in headers), key=lambda c: c or "~"),
        kernel=kernel,
        taps=taps,
        recorder={
            "mode": "merged",
            "clock": clock,
            "monotonic_t0": base if clock == "monotonic" else None,
            "kernel_id": next(iter(kids)) if kids else None,
            "parts": [
                {"taps": h.taps, "file": names[i] if i < len(names) else None, "t_offset": round(offsets[i], 6),
                 **{k: v for k, v in h.recorder.items() if k in ("mode", "pid", "upstream")}}
                for i, h in enumerate(headers)
            ],
        },
    )

    def shifted(i: int, records: Iterable[Record]) -> Iterator[tuple[float, int, int, Record]]:
        off = offsets[i]
        for n, rec in enumerate(records):
            yield rec.t + off, i, n, rec

    def renumbered() -> Iterator[Record]:
        streams = [shifted(i, recs) for i, (_, recs) in enumerate(parts)]
        seq = 0
        for t, _i, _n, rec in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2])):
            seq += 1
            yield dataclasses.replace(rec, seq=seq, t=t)

    return header, renumbered()


def group_parts(paths: Iterable[str | os.PathLike[str]]) -> dict[str, list[Path]]:
    """Part files by kernel id (files without one are left out)."""
    out: dict[str, list[Path]] = {}
    for p in sorted(Path(x) for x in paths):
        try:
            sf = open_session(p)
        except Exception:
            continue
        kid = kernel_id_of(sf.header)
        sf.close()
        if kid:
            out.setdefault(kid, []).append(p)
    return out


def merge_files(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[SessionHeader, int, list[str]]:
    """Merge part files into `out`; returns (header, records written, reader warnings)."""
    files = [open_session(p) for p in paths]
    warnings: list[str] = []
    header, records = merge_parts([(f.header, f) for f in files], names=[Path(p).name for p in paths])
    n = 0
    with SessionWriter(out, header, overwrite=overwrite) as writer:
        batch: list[Record] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= 1000:
                writer.write_many(batch)
                n += len(batch)
                batch = []
        writer.write_many(batch)
        n += len(batch)
    for f in files:
        warnings.extend(f.warnings)
    return header, n, warnings
