"""Session files on disk: the thin I/O shell around `session.format`.

Writing: one `os.write` per batch of complete lines, straight to the file
(no user-space buffer), so a `kill -9` of the recorder leaves a file whose every
complete line is valid. Files are created mode 0600.

Reading: plain `.jsonl` or `.jsonl.gz`; a truncated last line is dropped with
a warning; anything else that is not a session is a `SessionReadError` whose
text is one line.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator

from .format import SessionDecoder, SessionFormatError, SessionReadError, encode_header, encode_record
from .lean import decode_lean_record
from .records import Record, SessionHeader


WRITE_CHUNK = 1 << 20
READ_BUFFER = 1 << 20


class SessionWriteError(Exception):
    """The session file cannot be created or written."""


class SessionWriter:
    """Append records to a new session file (mode 0600)."""

    def __init__(self, path: str | os.PathLike[str], header: SessionHeader, *, overwrite: bool = False):
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        flags |= os.O_TRUNC if overwrite else os.O_EXCL
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, mode=0o700)
            self._fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            raise SessionWriteError(f"{self.path} already exists (use --force to overwrite)") from None
        except OSError as exc:
            raise SessionWriteError(f"cannot create {self.path}: {exc.strerror}") from None
        os.fchmod(self._fd, 0o600)
        self.header = header
        self._write(encode_header(header))

    def write(self, record: Record) -> None:
        self._write(encode_record(record))

    def write_many(self, records: Iterable[Record]) -> None:
        """Write complete lines, about WRITE_CHUNK bytes per write (never a
        partial line: a killed writer still leaves only whole lines)."""
        chunk: list[bytes] = []
        size = 0
        for rec in records:
            line = encode_record(rec)
            chunk.append(line)
            size += len(line)
            if size >= WRITE_CHUNK:
                self._write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self._write(b"".join(chunk))

    def write_lines(self, lines: list[bytes]) -> None:
        """Encoded lines as they are, with one ``writev`` (per 1,024 lines): no joined copy of the batch."""
        for start in range(0, len(lines), 1024):
            chunk = lines[start:start + 1024]
            n = os.writev(self._fd, chunk)
            if n < sum(map(len, chunk)):  # a short write (disk full, signal): the rest the plain way
                self._write(memoryview(b"".join(chunk))[n:])

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SessionFile:
    """An open session: `.header` now, records by iterating, `.warnings` after.

    Streamed records carry their binary buffers still encoded (`EncodedBuffers`):
    they are decoded and checked when first used, and a corrupt one raises
    SessionReadError then. `lazy_buffers=False` checks them as each line is read.
    `lean=True` yields `LeanMessageRecord`s for message lines (session/lean.py:
    what the timeline reads, for a final state only).
    """

    def __init__(self, path: str | os.PathLike[str], *, lazy_buffers: bool = True, lean: bool = False):
        self.path = Path(path)
        self.warnings: list[str] = []
        self._decoder = SessionDecoder(str(self.path), lazy_buffers=lazy_buffers,
                                       decode=decode_lean_record if lean else None)
        try:
            self._fh: IO[bytes] = _open(self.path)
            first = self._fh.readline()
        except FileNotFoundError:
            raise SessionReadError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise SessionReadError(f"{self.path}: is a directory, not a session file") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise SessionReadError(f"{self.path}: cannot read ({_why(exc)})") from None
        if not first:
            raise SessionReadError(f"{self.path}: empty file, not a widgetspy session")
        try:
            self._decoder.feed(first)
        except SessionFormatError as exc:
            raise SessionReadError(f"{self.path}: {exc}") from None
        assert self._decoder.header is not None
        self.header: SessionHeader = self._decoder.header

    def __iter__(self) -> Iterator[Record]:
        try:
            yield from self._decoder.records(self._fh)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            self.warnings.append(
                f"{self.path}: compressed data ends early ({_why(exc)}); read {self._decoder.lineno} lines"
            )
        except SessionFormatError as exc:
            line = getattr(exc, "line", b"\n")
            if not line.endswith(b"\n"):
                self.warnings.append(
                    f"{self.path}: last line {self._decoder.lineno} is truncated ({len(line)} bytes), ignored"
                )
                return
            raise SessionReadError(f"{self.path}: {exc}") from None
        finally:
            self._fh.close()

    def close(self) -> None:
        self._fh.close()


def open_session(path: str | os.PathLike[str], *, lazy_buffers: bool = True, lean: bool = False) -> SessionFile:
    """Stream a session's records (buffers decoded on first use, see SessionFile;
    `lean=True`: message lines as `LeanMessageRecord`s, for Timeline(history=False))."""
    return SessionFile(path, lazy_buffers=lazy_buffers, lean=lean)


def read_session(path: str | os.PathLike[str]) -> tuple[SessionHeader, list[Record], list[str]]:
    """Read a whole session: (header, records, warnings). Every buffer is
    decoded and checked here (a corrupt one is a SessionReadError)."""
    sf = SessionFile(path, lazy_buffers=False)
    records = list(sf)
    return sf.header, records, sf.warnings


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    # readline() on a 1 MiB buffer runs ~3x faster than on the default 8 KiB
    # one (fewer read(2) calls; benchmarks/bench_timeline.py)
    return open(path, "rb", buffering=READ_BUFFER)


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:100]
