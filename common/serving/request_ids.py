"""Request ids: the caller's, checked, or a new one.

An id travels to the predictor, into every log line and every captured row, and
back to the caller: it is bounded in length and limited to characters that need
no escaping in a header, a log or a file name. A caller's id that breaks the rule
is the caller's 400, and neither the answer nor the log repeats it.
"""

from __future__ import annotations

import random
import re
from typing import Final

from common.core.errors import ClientError
from common.core.settings import MAX_REQUEST_ID_CHARS

__all__ = ["ALLOWED", "new_request_id", "request_id"]

#: The characters an id may hold: those of UUIDs, trace ids and base64.
ALLOWED: Final = "letters, digits and . _ : - / + = @"
_ID: Final = re.compile(r"[A-Za-z0-9._:/+=@-]+")
# A version-4 UUID's fixed bits: the version nibble and the RFC 4122 variant.
_UUID4_CLEAR: Final = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET: Final = (0x4 << 76) | (0x2 << 62)


def request_id(*candidates: str | None, max_chars: int = MAX_REQUEST_ID_CHARS) -> str:
    """The first of ``candidates`` given (not None or empty), checked; else a new UUID.

    Examples
    --------
    >>> request_id(None, "abc-1")
    'abc-1'
    >>> len(request_id(None, ""))
    36

    An invalid id is named by what is wrong with it, never quoted: it may be anything a
    caller sent, and the answer and the log must not repeat it.

    >>> request_id("a<b>")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    common.core.errors.ClientError: the request id is invalid: its character 2 is not allowed; ...
    """
    for candidate in candidates:
        if candidate:
            if len(candidate) > max_chars or not _ID.fullmatch(candidate):
                raise ClientError(f"the request id is invalid: {_fault(candidate, max_chars)}")
            return candidate
    return new_request_id()


def _fault(candidate: str, max_chars: int) -> str:
    """What is wrong with an invalid id, without a character of it."""
    expected = f"expected 1 to {max_chars} of {ALLOWED}"
    if len(candidate) > max_chars:
        return f"it has {len(candidate)} characters; {expected}"
    wrong = next(i for i, char in enumerate(candidate) if not _ID.fullmatch(char))
    return f"its character {wrong + 1} is not allowed; {expected}"


def new_request_id() -> str:
    """A new random version-4 UUID, as text.

    An id must be unique, not secret: ``random`` (seeded from the OS, and reseeded
    in a forked child) gives its 122 bits without ``uuid4``'s system call and
    ``UUID`` object, in a third of the time, on every request that comes without one.

    Examples
    --------
    >>> import uuid
    >>> uuid.UUID(new_request_id()).version
    4
    """
    digits = f"{(random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
