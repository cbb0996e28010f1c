"""Sources of frames: ``open_source`` picks the right one for a URL or path."""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote, urlsplit

from pipelines.errors import SourceError
from pipelines.secrets import redact_url
from pipelines.sources.base import Source, SourceConfig, SourceSpec

__all__ = ["Source", "SourceConfig", "SourceSpec", "open_source", "is_live_url"]

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
_WEBCAM = re.compile(r"^(webcam:\d+|/dev/video\d+)$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_live_url(url: str) -> bool:
    """True for camera URLs (rtsp/rtsps/rtmp/http(s)), ``/dev/videoN`` and ``webcam:N``."""
    if _WEBCAM.match(url):
        return True
    match = _SCHEME.match(url)
    return bool(match and match.group(1).lower() in LIVE_SCHEMES)


def _file_path(url: str) -> Optional[str]:
    """The local path of a plain path or ``file://`` URL; None for anything with another scheme."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    if match.group(1).lower() == "file":
        return unquote(urlsplit(url).path)
    return None


def open_source(spec: SourceSpec, options: Optional[SourceConfig] = None) -> Source:
    """Open the source named by ``spec.url`` with reading ``options``.

    Plain paths and ``file://`` URLs open a ``FileSource``; camera URLs a ``LiveSource``. Anything else
    raises ``SourceError`` with one line naming the scheme (credentials never appear in it).
    """
    options = options or SourceConfig()
    if is_live_url(spec.url):
        try:
            from pipelines.sources.live import LiveSource  # type: ignore[import-not-found]
        except ImportError:
            raise SourceError(f"live sources not available in this build: {redact_url(spec.url)}") from None
        return LiveSource(spec, options)  # type: ignore[no-any-return]
    path = _file_path(spec.url)
    if path is None:
        scheme = _SCHEME.match(spec.url).group(1)  # type: ignore[union-attr]
        raise SourceError(
            f"unsupported source {redact_url(spec.url)!r}: scheme {scheme!r} is not one of file, "
            f"{', '.join(LIVE_SCHEMES)} (or a /dev/videoN, webcam:N)")
    from pipelines.sources.file import FileSource

    return FileSource(path, spec.id, options)
