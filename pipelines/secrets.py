"""Keep credentials out of logs, errors, metrics and published messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@")
_QUERY_SECRET = re.compile(r"(?i)\b(password|passwd|pwd|token|key|secret)=([^&\s]+)")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (user names are kept; query secrets masked too)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}=***", text)


def redact_text(text: str, *secrets: str | None) -> str:
    """``text`` with every URL password and each given secret string replaced by ``***``."""
    out = redact_url(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out


def url_password(url: str) -> str | None:
    """The password embedded in ``url``, if any (to pass to ``redact_text``)."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def source_name(url: str) -> str:
    """A readable id for a source URL without credentials: host and path (``cam1.local/stream1``)."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # plain path (or a Windows drive letter)
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return (host + parts.path).strip("/") or parts.scheme
