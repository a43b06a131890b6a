"""Where the jobs' files live: a local path, or an object store (``s3://bucket/prefix``).

The locations are opened by :func:`common.core.storage.filesystem` (the transformer's
capture store uses the same function, so both read the same S3 variables); this module
turns its failures into the jobs' errors. A bad location is :class:`BadInput` (exit 2);
an object store that does not answer, or refuses, is :class:`Unavailable` (exit 3),
with a message naming the location, never a traceback. A local file's ``OSError`` is
left to the caller, which names the flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyarrow.fs as pafs

from common.core import storage
from monitoring.errors import BadInput, Unavailable

__all__ = ["filesystem", "reaching", "write_bytes"]


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds ``uri`` and the path within it."""
    try:
        return storage.filesystem(uri)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


@contextlib.contextmanager
def reaching(uri: str) -> Iterator[None]:
    """Run the block's storage calls on ``uri``: an object store's ``OSError`` (not
    reached, or refused) becomes :class:`Unavailable`; a local one is left to the caller."""
    try:
        yield
    except OSError as exc:
        if storage.is_local(uri):
            raise
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise Unavailable(f"{uri!r}: the object store failed ({reason})") from exc


def write_bytes(directory: str, name: str, data: bytes) -> str:
    """Write ``data`` to ``directory/name`` via a temporary name, then rename it."""
    fs, root = filesystem(directory)
    final = f"{root.rstrip('/')}/{name}"
    temporary = f"{root.rstrip('/')}/.{name}.tmp"
    with reaching(directory):
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(temporary) as stream:
            stream.write(data)
        fs.move(temporary, final)
    return final if storage.is_local(directory) else f"{directory.rstrip('/')}/{name}"
