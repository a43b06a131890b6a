"""Credentials out of URLs, before a URL is logged, answered or stored.

A URL given as a setting may carry a secret: a password in its userinfo
(``http://user:PASSWORD@host``), a token in its query (``?token=...``, ``?api_key=...``)
or a pre-signed URL's signature (``X-Amz-Signature=...``). Wherever this project logs a
URL, writes one into a report or MLflow, or puts one in an error message, it passes it
through :func:`redact_url`; text that may hold URLs (an exception's message, a log line)
goes through :func:`redact_text`, which the JSON log formatter applies to every field as a
last guard (:mod:`common.core.logs`).

What is hidden, and what is left:

- userinfo: the password, as ``user:***@``; a user alone, as ``***@`` (a token is often
  given as the user, ``https://TOKEN@host``);
- query and fragment parameters whose name looks like a secret (:func:`is_secret_name`):
  their values, as ``token=***``; other parameters stay, so the URL still says where;
- a secret in a URL's path (Slack-style webhooks) cannot be told from a path: callers
  that hold such URLs show the origin alone (``redact_url(url, keep_path=False)``).

The scheme, host, port and path stay: an error must still say which server failed.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, unquote_plus

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_text",
    "redact_url",
    "split_userinfo",
]

#: What stands in for a hidden value.
REDACTED: Final = "***"

# Parts of a name that mark a secret, anywhere in it (case-insensitive): access_token,
# client_secret, X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, api_key, apikey,
# private_key, passwd, oauth_signature, sessionid ...
_SECRET_PARTS: Final = re.compile(
    r"token|secret|passw|pwd|signature|credential|api[-_.]?key|access[-_.]?key"
    r"|private[-_.]?key|auth|session|cookie",
    re.IGNORECASE,
)
# Names too short to look for inside others ("key" is in "monkey", "sig" in "design").
_SECRET_NAMES: Final = frozenset({"key", "sig", "pass", "pw"})

# A URL with an authority: scheme://... up to white space, a quote or an angle bracket.
# The scheme's length is bounded, so a long run of letters and dots costs linear time.
_URL: Final = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://[^\s'"<>`]+""")
# The userinfo of such a URL: greedy, so a password holding "@" is hidden up to the last one.
_USERINFO: Final = re.compile(r"""^([a-zA-Z][a-zA-Z0-9+.\-]{0,31}://)([^/?#\s'"<>`]*)@""")
# A parameter after "?", "&", ";" or "#": name=value.
_PARAMETER: Final = re.compile(r"""([?&;#])([^=&;#?\s'"<>`]+)=([^&;#\s'"<>`]*)""")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter (or header, or field) of this name holds a secret.

    Examples
    --------
    >>> [is_secret_name(n) for n in ("token", "X-Amz-Signature", "API_KEY", "sig", "page")]
    [True, True, True, True, False]
    """
    return bool(_SECRET_PARTS.search(name)) or name.lower() in _SECRET_NAMES


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` with its credentials replaced by ``***``.

    Parameters
    ----------
    url : str
        Any string; one that is no URL (a path, ``models:/NAME@ALIAS``) comes back as is.
    keep_path : bool, default=True
        False keeps the scheme, host and port alone (``http://host:port/…``), for URLs
        whose path itself is the secret, such as a Slack webhook's.

    Examples
    --------
    >>> redact_url("http://user:hunter2@127.0.0.1:9091")
    'http://user:***@127.0.0.1:9091'
    >>> redact_url("https://hooks.example/alert?channel=ops&token=abc#x")
    'https://hooks.example/alert?channel=ops&token=***#x'
    >>> redact_url("https://bucket.s3.example/k?X-Amz-Credential=AK&X-Amz-Signature=f00")
    'https://bucket.s3.example/k?X-Amz-Credential=***&X-Amz-Signature=***'
    >>> redact_url("https://ghp_token@git.example/repo")
    'https://***@git.example/repo'
    >>> redact_url("https://hooks.example/services/T0/B0/secret?x=1", keep_path=False)
    'https://hooks.example/…'
    >>> redact_url("models:/sales-quantity-classifier@production")
    'models:/sales-quantity-classifier@production'
    """
    if not keep_path:
        scheme, sep, rest = url.partition("://")
        if sep:
            host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
            return f"{scheme}://{host}/…"
    return _PARAMETER.sub(_parameter, _USERINFO.sub(_userinfo, url))


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`, and any other
    secret-named parameter (``?token=...`` of a path alone) hidden.

    Examples
    --------
    >>> redact_text("API request to http://u:pw@127.0.0.1:1/api?name=m failed")
    'API request to http://u:***@127.0.0.1:1/api?name=m failed'
    >>> redact_text("Server error for url 'http://a:b@h/hook?token=abc'")
    "Server error for url 'http://a:***@h/hook?token=***'"
    >>> redact_text('"GET /v2/models?api_key=k1 HTTP/1.1" 200')
    '"GET /v2/models?api_key=*** HTTP/1.1" 200'
    """
    if "://" in text:
        text = _URL.sub(lambda m: _USERINFO.sub(_userinfo, m.group(0)), text)
    if "=" in text:
        text = _PARAMETER.sub(_parameter, text)
    return text


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without its userinfo, user, password)``: for clients that take credentials
    apart from the URL (HTTP basic auth); ``None`` where there is none.

    Examples
    --------
    >>> split_userinfo("http://pusher:s3cret@127.0.0.1:9091/")
    ('http://127.0.0.1:9091/', 'pusher', 's3cret')
    >>> split_userinfo("http://127.0.0.1:9091")
    ('http://127.0.0.1:9091', None, None)
    """
    match = _USERINFO.match(url)
    if match is None:
        return url, None, None
    user, sep, password = match.group(2).partition(":")
    return match.group(1) + url[match.end() :], unquote(user), unquote(password) if sep else None


def _userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match.group(2).partition(":")
    return f"{match.group(1)}{user}:{REDACTED}@" if sep else f"{match.group(1)}{REDACTED}@"


def _parameter(match: re.Match[str]) -> str:
    lead, name, value = match.groups()
    if value and is_secret_name(unquote_plus(name)):
        return f"{lead}{name}={REDACTED}"
    return match.group(0)
