"""Where files live: a local path, or a URI pyarrow (or fsspec, if installed) can open.

The capture store and the report directory may be a PVC path or an object store;
every reader and writer of the jobs goes through :func:`filesystem`.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from monitoring.errors import BadInput

__all__ = ["filesystem", "write_bytes"]


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds ``uri`` and the path within it."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, str(path)
    except (pa.ArrowInvalid, ValueError) as arrow_error:
        try:
            import fsspec  # optional: any protocol fsspec knows
        except ImportError:
            raise BadInput(f"{uri!r}: unsupported URI scheme ({arrow_error})") from arrow_error
        protocol, _, rest = uri.partition("://")
        handler: Any = pafs.FSSpecHandler(fsspec.filesystem(protocol))
        return pafs.PyFileSystem(handler), rest


def write_bytes(directory: str, name: str, data: bytes) -> str:
    """Write ``data`` to ``directory/name`` via a temporary name, then rename it."""
    fs, root = filesystem(directory)
    fs.create_dir(root, recursive=True)
    final = f"{root.rstrip('/')}/{name}"
    temporary = f"{root.rstrip('/')}/.{name}.tmp"
    with fs.open_output_stream(temporary) as stream:
        stream.write(data)
    fs.move(temporary, final)
    return final if "://" not in directory else f"{directory.rstrip('/')}/{name}"
