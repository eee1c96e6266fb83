"""The session format: typed records, the line codec, and files."""

from .files import SessionFile, SessionReadError, SessionWriteError, SessionWriter, open_session, read_session
from .format import FORMAT_NAME, FORMAT_VERSION, SessionDecoder, SessionFormatError
from .records import EventRecord, MessageRecord, Record, SessionHeader, UnparsedRecord

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "EventRecord",
    "MessageRecord",
    "Record",
    "SessionDecoder",
    "SessionFile",
    "SessionFormatError",
    "SessionHeader",
    "SessionReadError",
    "SessionWriteError",
    "SessionWriter",
    "UnparsedRecord",
    "open_session",
    "read_session",
]
