"""Malloc settings for the recording processes (glibc only; a no-op elsewhere).

A recorder turns every big message into new big objects (the frames it reads,
the buffer's base64, the session line) and frees them a moment later. glibc
serves each such block with a fresh ``mmap`` (or trims the heap top after the
free), so every recorded MiB faults in ~256 new zeroed pages: on this kind of
VM that cost 1.2 ms of the 2.2 ms it took to record a 1 MiB buffer
(benchmarks/bench_ws.py). Raising the mmap and trim thresholds keeps freed
blocks in the heap for the next message. Memory stays bounded: what is kept is
at most the largest batch in flight plus `TRIM_THRESHOLD`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # bytes: blocks up to this come from the heap and are reused (glibc's maximum)
TRIM_THRESHOLD = 64 << 20  # bytes of free heap top kept before it is given back


def keep_freed_memory() -> bool:
    """Let this process's malloc reuse freed big blocks instead of mapping new
    pages for each. True when the settings took."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
