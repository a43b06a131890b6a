"""Request bodies KServe hands over undecoded."""

from __future__ import annotations

from typing import Any

import orjson

from common.errors import ClientError

__all__ = ["json_body"]


def json_body(payload: Any) -> Any:
    """Decode a V1 body KServe left as bytes.

    KServe decodes JSON only when the request says ``content-type:
    application/json``; ``curl -d`` says form-urlencoded, so accept JSON whatever
    the content type claims.
    """
    if isinstance(payload, bytes | str):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ClientError(f"the request body is not valid JSON: {exc}") from None
    return payload
