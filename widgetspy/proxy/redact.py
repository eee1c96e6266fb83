"""Redaction on record: secrets are taken out of records before they are written.

    redactor = Redactor.for_recording(key=connection_key, patterns=["hunter2", r"sk-[A-Za-z0-9]{20,}"])
    lines = redactor.encode(records)   # bytes, ready for the session file

Each record is encoded once, as it would be anyway; the encoded line is then
checked for the patterns' literal parts (substring scans in C: the key, a plain
word, `token`/`bearer` in the lowercased line), and the regexes run only on a
line that holds one (or on every line, for a pattern without a literal part).
Only a line that matches
is rebuilt: its record is rewritten field by field (every string in the
message's header, parent header, metadata and content, dict keys included, and
every binary buffer) with each match replaced by `REDACTED`, then encoded
again. A recording where nothing matches pays one scan per line and nothing
else.

Patterns are Python regular expressions matched against the JSON text of a
line for the quick check: write them for text without quotes, backslashes or
line breaks (those are escaped in JSON), and without `^`/`$` anchors.

Default patterns (`default_patterns`): the kernel's HMAC key (never in a
message unless user code prints it, e.g. from the connection file), the
value of `token=...` (URL query strings, `JUPYTER_TOKEN=...`), and the
credential of an `Authorization: token|bearer ...` header. Extra patterns come
from `widgetspy record --redact REGEX` (repeatable) and the `WIDGETSPY_REDACT`
environment variable (one pattern per line), which reaches the recorder in
every way in (kernelspec and provisioner modes too).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Iterable

from ..message import Message
from ..session.format import encode_message_parts, encode_record
from ..session.records import EventRecord, MessageRecord, Record, UnparsedRecord

REDACTED = "[redacted]"
ENV_VAR = "WIDGETSPY_REDACT"

TOKEN_PATTERNS = (
    r"(?i)(?<=token=)[^\s&#\"'<>\\]+",
    r"(?i)(?<=token )[A-Za-z0-9._~+/=-]{8,}",
    r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}",
)
# Substrings one of which a line must hold before a pattern's regex runs at all (a `bytes in line`
# test is a memchr-speed scan; a regex with a lookbehind tries every position). The token patterns
# are case-insensitive: their needles are looked for in the lowercased line.
NEEDLES_ANY_CASE = {
    TOKEN_PATTERNS[0]: b"token",
    TOKEN_PATTERNS[1]: b"token",
    TOKEN_PATTERNS[2]: b"bearer",
}
_META = set(".^$*+?{}[]\\|()")


class RedactionError(ValueError):
    """A pattern that does not compile; str() is one line."""


def default_patterns(key: str | bytes | None) -> list[str]:
    """The kernel key (when there is one) and the token patterns."""
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    out = [re.escape(key)] if key and len(key) >= 8 else []
    return out + list(TOKEN_PATTERNS)


def env_patterns(environ: dict[str, str] | None = None) -> list[str]:
    text = (environ if environ is not None else os.environ).get(ENV_VAR, "")
    return [line for line in text.splitlines() if line.strip()]


class Redactor:
    def __init__(self, patterns: Iterable[str], *, buffers: str = "all"):
        """`buffers`: how raw binary buffers are checked. "all" (default): every pattern, as text;
        "literals": only for the literal patterns (`secret in buf`), which costs a fraction of
        lowercasing each buffer for the token patterns' needles (the websocket tap: 1 MiB buffers at
        mitmproxy's pace; its token patterns still run on every message's JSON)."""
        if buffers not in ("all", "literals"):
            raise ValueError(f"buffers={buffers!r}: 'all' or 'literals'")
        self.buffers = buffers
        self.sources = list(dict.fromkeys(patterns))
        self.patterns: list[re.Pattern[str]] = []
        self._quick: list[re.Pattern[bytes]] = []
        for src in self.sources:
            try:
                self.patterns.append(re.compile(src))
            except re.error as exc:
                raise RedactionError(f"--redact {src!r}: bad regex ({exc})") from None
            try:  # the quick check runs on the encoded bytes; a str-only pattern decodes the line instead
                self._quick.append(re.compile(src.encode("utf-8")))
            except (re.error, UnicodeEncodeError):
                self._quick = []
                break
        # Prefilter: a line that holds none of these cannot match (None: some pattern has no needle,
        # every line goes to the regexes).
        exact: list[bytes] = []
        any_case: list[bytes] = []
        for src in self.sources:
            if src in NEEDLES_ANY_CASE:
                any_case.append(NEEDLES_ANY_CASE[src])
            elif (literal := _literal(src)) is not None:
                exact.append(literal)
            else:
                exact = any_case = []
                self._prefilter_on = False
                break
        else:
            self._prefilter_on = True
        self._exact = tuple(dict.fromkeys(exact))
        self._literals = tuple(lit for src in self.sources if (lit := _literal(src)) is not None)
        self._any_case = tuple(dict.fromkeys(any_case))
        self.redacted = 0  # records rewritten so far

    @classmethod
    def for_recording(cls, key: str | bytes | None = None, patterns: Iterable[str] = (),
                      *, defaults: bool = True, environ: dict[str, str] | None = None,
                      buffers: str = "all") -> "Redactor":
        return cls([*(default_patterns(key) if defaults else []), *patterns, *env_patterns(environ)], buffers=buffers)

    # ------------------------------------------------------------ the line path

    def matches(self, line: bytes) -> bool:
        if self._prefilter_on:
            if not any(n in line for n in self._exact):
                if not self._any_case:
                    return False
                low = line.lower()
                if not any(n in low for n in self._any_case):
                    return False  # the common case: a few memchr-speed scans, no regex
        if self._quick:
            return any(p.search(line) for p in self._quick)
        text = line.decode("utf-8", "replace")
        return any(p.search(text) for p in self.patterns)

    def encode(self, records: Iterable[Record]) -> tuple[bytes, list[Record]]:
        """Encode records as session lines, redacted; returns (bytes, the records as written)."""
        lines, records = self.encode_lines(records)
        return b"".join(lines), records

    def encode_lines(self, records: Iterable[Record]) -> tuple[list[bytes], list[Record]]:
        """`encode`, one bytes per line (for a vectored write: no copy of the batch)."""
        records = list(records)
        if not self.patterns:
            return [encode_record(rec) for rec in records], records
        out: list[bytes] = []
        matches = self.matches
        for i, rec in enumerate(records):
            if isinstance(rec, MessageRecord) and rec.msg.buffers:
                # the JSON without the base64 of the buffers (a match in base64 text means nothing,
                # and a 1 MiB buffer is 1.4 MB of it to scan), then the raw buffers
                m = rec.msg
                head, line = encode_message_parts(rec)
                if head is None:
                    head = encode_record(dataclasses.replace(
                        rec, msg=Message(m.header, m.parent_header, m.metadata, m.content, [])))
                hit = matches(head) or (
                    any(self._buffer_may_match(b) for b in m.buffers) and _buffers_match(rec, self._quick, self.patterns))
            else:
                line = encode_record(rec)
                hit = matches(line)
            out.append(line)
            if hit:
                records[i] = rec = self.redact_record(rec)
                out[i] = encode_record(rec)
                self.redacted += 1
        return out, records

    def _buffer_may_match(self, buf: bytes | bytearray | memoryview) -> bool:
        """The needle prefilter on a raw binary buffer: False when no pattern can match in it.

        (The token regexes' lookbehinds try every position: ~100 ms on a 1 MiB buffer,
        against well under 1 ms for these scans.)"""
        if self.buffers == "literals":
            return any(n in buf for n in self._literals)
        if not (self._prefilter_on and self._quick):
            return True
        if any(n in buf for n in self._exact):
            return True
        return bool(self._any_case) and any(n in bytes(buf).lower() for n in self._any_case)

    # ------------------------------------------------------------ the structured rewrite

    def redact_text(self, text: str) -> str:
        for p in self.patterns:
            text = p.sub(REDACTED, text)
        return text

    def redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {(self.redact_text(k) if isinstance(k, str) else k): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        return value

    def redact_bytes(self, buf: bytes) -> bytes:
        for p in self._quick:
            buf = p.sub(REDACTED.encode(), buf)
        return buf

    def redact_record(self, rec: Record) -> Record:
        if isinstance(rec, MessageRecord):
            m = rec.msg
            msg = Message(self.redact_value(m.header), self.redact_value(m.parent_header),
                          self.redact_value(m.metadata), self.redact_value(m.content),
                          [self.redact_bytes(bytes(b)) for b in m.buffers])
            return dataclasses.replace(rec, msg=msg, peer=self.redact_value(rec.peer))
        if isinstance(rec, EventRecord):
            return dataclasses.replace(rec, data=self.redact_value(rec.data))
        if isinstance(rec, UnparsedRecord):
            return dataclasses.replace(rec, reason=self.redact_text(rec.reason))
        return rec


def _buffers_match(rec: Record, quick: list[re.Pattern[bytes]], patterns: list[re.Pattern[str]]) -> bool:
    """Binary buffers are base64 in the line: look into the raw bytes too."""
    if not isinstance(rec, MessageRecord) or not rec.msg.buffers:
        return False
    for buf in rec.msg.buffers:
        if quick:
            if any(p.search(buf) for p in quick):
                return True
        else:
            text = bytes(buf).decode("utf-8", "replace")
            if any(p.search(text) for p in patterns):
                return True
    return False


def _literal(src: str) -> bytes | None:
    """The text a pattern matches when it is a plain word or an escaped literal (the kernel key)."""
    if not (_META & set(src)):
        return src.encode("utf-8")
    plain = re.sub(r"\\(.)", r"\1", src)
    if re.escape(plain) == src:
        return plain.encode("utf-8")
    return None
