"""Keep credentials out of logs, errors, metrics, pages and published messages.

``redact_text`` is the one masking function: every log line (a filter on the log handlers, ``install_log_mask``),
every error, metric label, event, web page and summary goes through it. It never raises, whatever the text:

- ``scheme://user:password@host``: the password is replaced by ``***`` whatever it holds (``@ / : # ?``, spaces
  excluded, raw or percent-encoded): the user-info ends at the *last* ``@`` of the URL, so a password with a
  raw ``@`` or ``/`` is masked whole, never half. A user-info without ``:`` (``https://TOKEN@host``) is masked
  whole.
- query parameters and ``name=value`` pairs whose name says "secret" (``pass``, ``password``, ``passwd``,
  ``pwd``, ``token``, ``access_token``, ``key``, ``api_key``, ``apikey``, ``secret``, ``auth``, ``sig``,
  ``signature``, any case, also with a prefix like ``x-api-key``): the value is replaced by ``***``.

The parsing helpers below (``url_password``, ``source_name``, ``strip_credentials``) split user-info the same
way and never raise, so a URL that does not parse cannot end in a traceback that prints part of it.
"""

from __future__ import annotations

import logging
import re
from typing import Optional
from urllib.parse import unquote, urlsplit

MASK = "***"
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://)")
_SECRET_NAMES = ("pass|password|passwd|pwd|token|access_token|auth_token|key|api_key|apikey|secret|"
                 "client_secret|auth|sig|signature|credential|credentials")
_PAIR = re.compile(rf"(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_-])*(?:{_SECRET_NAMES}))=([^&\s'\"]*[^&\s'\":,;.)])")
# where a URL written in running text ends: white space (quotes and brackets are kept: a password may hold them)
_URL_END = re.compile(r"\s")


def _split_userinfo(rest: str) -> tuple[Optional[str], str]:
    """``rest`` (a URL after ``scheme://``) -> (user-info or None, what follows the last ``@``)."""
    at = rest.rfind("@")
    if at <= 0 or rest.startswith("/"):  # no user-info (file:///a@b.mp4 is a path)
        return None, rest
    userinfo = rest[:at]
    user, colon, _ = userinfo.partition(":")
    if any(c in user for c in "/?#") or (not colon and not user):
        return None, rest  # an @ in the path or query (http://host/a@b), not user-info
    return userinfo, rest[at + 1:]


def _mask_url_token(token: str) -> str:
    """One URL (``scheme://...``, no white space) with its user-info password masked."""
    scheme_end = token.index("://") + 3
    userinfo, after = _split_userinfo(token[scheme_end:])
    if userinfo is None:
        return token
    user, colon, _password = userinfo.partition(":")
    if not colon:  # a lone user-info (https://TOKEN@host) is as secret as a password
        return f"{token[:scheme_end]}{MASK}@{after}"
    return f"{token[:scheme_end]}{user}:{MASK}@{after}"


def redact_url(text: str) -> str:
    """``text`` (a URL, or any text holding URLs) with every URL password and credential-like parameter
    replaced by ``***`` (user names are kept). Never raises."""
    try:
        text = str(text)
        out: list[str] = []
        pos = 0
        for match in _SCHEME.finditer(text):
            if match.start() < pos:  # inside a URL already handled (a password holding "x://")
                continue
            end_match = _URL_END.search(text, match.end())
            end = end_match.start() if end_match else len(text)
            out.append(text[pos:match.start()])
            out.append(_mask_url_token(text[match.start():end]))
            pos = end
        out.append(text[pos:])
        return _PAIR.sub(lambda m: f"{m.group(1)}={MASK}", "".join(out))
    except Exception:  # noqa: BLE001 - masking must never be the thing that fails
        return MASK


def mask_url(url: str) -> str:
    """``url`` (one URL, as a message shows it) with its password masked whatever it holds, a raw space too
    (which would end a URL in running text, where ``redact_url`` cuts it). Never raises."""
    try:
        url = url.strip()   # a leading space would hide the scheme
        return redact_url(_mask_url_token(url) if _SCHEME.match(url) else url)
    except Exception:  # noqa: BLE001 - masking must never be the thing that fails
        return MASK


def redact_text(text: str, *secrets: Optional[str]) -> str:
    """``text`` with every URL password (``redact_url``) and each given secret string (as written and
    percent-decoded) replaced by ``***``. The one function every shown text goes through."""
    out = str(text)
    for secret in secrets:
        if secret:
            for form in {secret, _unquote(secret)}:
                if len(form) >= 2:  # one character would mask every occurrence of it
                    out = out.replace(form, MASK)
    return redact_url(out)


def _unquote(text: str) -> str:
    try:
        return unquote(text)
    except Exception:  # noqa: BLE001
        return text


def url_password(url: str) -> Optional[str]:
    """The password embedded in ``url`` as written (user-info up to the last ``@``), if any."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    userinfo, _ = _split_userinfo(url[match.end():])
    if userinfo is None:
        return None
    user, colon, password = userinfo.partition(":")
    return password if colon else user or None


def strip_credentials(url: str) -> str:
    """``url`` with the user-info part removed entirely (never raises)."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    _, after = _split_userinfo(url[match.end():])
    return url[:match.end()] + after


def source_name(url: str) -> str:
    """A readable id for a source URL without credentials: host and path (``cam1.local/stream1``)."""
    plain = strip_credentials(url)
    try:
        parts = urlsplit(plain)
        if not parts.scheme or len(parts.scheme) == 1:  # plain path (or a Windows drive letter)
            return url
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # an unparseable URL: its text without credentials, masked
        return redact_url(plain.split("://", 1)[-1]).strip("/") or MASK
    if port:
        host = f"{host}:{port}"
    return (host + parts.path).strip("/") or parts.scheme


class MaskFilter(logging.Filter):
    """A log filter that masks credentials in every record it passes (message and arguments rendered)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave the record for logging to report
            return True
        masked = redact_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            masked += "\n" + redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = masked, None
        return True


def install_log_mask(logger: Optional[logging.Logger] = None) -> None:
    """Mask credentials in everything the handlers of ``logger`` (default: the root logger) write."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskFilter) for f in handler.filters):
            handler.addFilter(MaskFilter())
