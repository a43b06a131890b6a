"""Where captures, labels and reports live: a directory, or an object store's URI.

:func:`filesystem` is the one place a location becomes a pyarrow filesystem: the
transformer's capture store writes through it, and so does every reader and writer of
the monitoring jobs. A location is a local path (a directory, or a claim mounted in
the pod) or a URI: ``s3://bucket/prefix``, what a cluster without ReadWriteMany storage
has, or any other scheme pyarrow (or fsspec, where installed) opens.

An ``s3://`` location is configured from the standard AWS variables, read as the AWS
CLI and SDKs read them:

=====================================  ==================================================
``AWS_ENDPOINT_URL_S3``, else          An S3-compatible server (MinIO, SeaweedFS, Ceph):
``AWS_ENDPOINT_URL``                   ``http(s)://host[:port]``. The scheme is taken from
                                       it, and buckets are addressed by path
                                       (``host/bucket/key``), as such servers expect.
                                       Unset: AWS S3 itself, over HTTPS.
``AWS_REGION``, else                   The bucket's region; unset: the AWS SDK's default
``AWS_DEFAULT_REGION``                 (``us-east-1``, or the profile's).
``AWS_ACCESS_KEY_ID``,                 Static credentials (a Kubernetes Secret). Unset:
``AWS_SECRET_ACCESS_KEY``,             the AWS SDK's default chain (web identity, i.e. a
``AWS_SESSION_TOKEN``                  service account's IRSA role; ``~/.aws``; instance
                                       metadata).
=====================================  ==================================================

A URI with a query string (``s3://bucket/prefix?endpoint_override=...``) is pyarrow's
own spelling of those options and is handed to pyarrow as it is.

pyarrow is imported inside :func:`filesystem`, not here: the core needs only pydantic and
NumPy at import (the predictor's image has no pyarrow), and :func:`check_location`, which
the settings classes call, opens nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["S3_VARIABLES", "check_location", "filesystem", "is_local", "s3_options"]

#: Each S3 setting and the variables it is read from, the first one set winning.
S3_VARIABLES: Final = {
    "endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "access_key": ("AWS_ACCESS_KEY_ID",),
    "secret_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
}


def is_local(location: str) -> bool:
    """True when ``location`` is a path on this machine rather than a URI.

    >>> is_local("/data/capture"), is_local("s3://bucket/capture")
    (True, False)
    """
    return "://" not in location


def check_location(location: str, environ: Mapping[str, str] | None = None) -> str:
    """``location``, checked without opening it; a ``ValueError`` says what is wrong.

    A settings class calls this so that a bad URI or S3 variable stops the part at
    start-up with a message, not at its first write.

    >>> check_location("s3://bucket/capture", {"AWS_ENDPOINT_URL": "http://minio:9000"})
    's3://bucket/capture'
    >>> check_location("s3://", {})
    Traceback (most recent call last):
    ...
    ValueError: 's3://' names no bucket: expected s3://BUCKET[/PREFIX]
    """
    if is_local(location):
        return location
    scheme, _, rest = location.partition("://")
    if not scheme or not rest.strip("/"):
        raise ValueError(
            f"{location!r} names no {'bucket' if scheme == 's3' else 'location'}: "
            f"expected {'s3://BUCKET[/PREFIX]' if scheme == 's3' else 'SCHEME://PATH'}"
        )
    if scheme == "s3" and "?" not in rest:
        s3_options(os.environ if environ is None else environ)
    return location


def s3_options(environ: Mapping[str, str]) -> dict[str, str]:
    """pyarrow ``S3FileSystem`` keyword arguments from the AWS variables in ``environ``.

    >>> s3_options({"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_REGION": "eu-west-1"})
    {'endpoint_override': '127.0.0.1:8333', 'scheme': 'http', 'region': 'eu-west-1'}
    >>> s3_options({"AWS_ENDPOINT_URL_S3": "https://s3.example", "AWS_ENDPOINT_URL": "x"})
    {'endpoint_override': 's3.example', 'scheme': 'https'}
    """
    given = {
        setting: next((environ[v] for v in variables if environ.get(v)), None)
        for setting, variables in S3_VARIABLES.items()
    }
    options: dict[str, str] = {}
    if given["endpoint"]:
        options |= _endpoint(given["endpoint"], environ)
    if given["region"]:
        options["region"] = given["region"]
    if bool(given["access_key"]) != bool(given["secret_key"]):
        missing = "AWS_SECRET_ACCESS_KEY" if given["access_key"] else "AWS_ACCESS_KEY_ID"
        raise ValueError(f"{missing} is not set: S3 credentials need both keys, or neither")
    if given["access_key"] and given["secret_key"]:
        options["access_key"] = given["access_key"]
        options["secret_key"] = given["secret_key"]
        if given["session_token"]:
            options["session_token"] = given["session_token"]
    return options


def _endpoint(url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``endpoint_override`` and ``scheme`` of an endpoint URL, checked."""
    name = next(v for v in S3_VARIABLES["endpoint"] if environ.get(v))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
        raise ValueError(
            f"{name}={url!r} is invalid: expected http://HOST[:PORT] or https://HOST[:PORT]"
        )
    return {"endpoint_override": parts.netloc, "scheme": parts.scheme}


def filesystem(
    location: str, environ: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds ``location``, and the path of ``location`` within it.

    Opening makes no request: an unreachable store fails the first read or write,
    with pyarrow's ``OSError``. A bad URI or S3 variable raises ``ValueError``.
    """
    import pyarrow as pa
    import pyarrow.fs as pafs

    if is_local(location):
        return pafs.LocalFileSystem(), os.path.abspath(location)
    check_location(location, environ)
    scheme, _, rest = location.partition("://")
    if scheme == "s3" and "?" not in rest:
        options: dict[str, Any] = s3_options(os.environ if environ is None else environ)
        return pafs.S3FileSystem(**options), rest.strip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(location)
        return fs, str(path)
    except (pa.ArrowInvalid, ValueError) as arrow_error:
        try:
            import fsspec  # optional: any protocol fsspec knows
        except ImportError:
            raise ValueError(f"{location!r}: unsupported URI ({arrow_error})") from arrow_error
        handler: Any = pafs.FSSpecHandler(fsspec.filesystem(scheme))
        return pafs.PyFileSystem(handler), rest
