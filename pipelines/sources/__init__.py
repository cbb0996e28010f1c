"""Sources of frames: ``open_source`` picks the right one for a source's URL or path."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional

from pipelines.errors import SourceError
from pipelines.secrets import redact_url
from pipelines.sources.base import LIVE_SCHEMES, Source, SourceConfig, file_path, is_live_url, url_scheme

if TYPE_CHECKING:
    from pipelines.settings import SourceSettings
    from pipelines.sources.looks import FirstLooks

__all__ = ["Source", "SourceConfig", "open_source", "is_live_url"]


def open_source(settings: "SourceSettings", looks: Optional["FirstLooks"] = None) -> Source:
    """Open the source named by ``settings.url`` with its id and reading options.

    Plain paths and ``file://`` URLs open a ``FileSource`` (taking the file ``looks`` opened at start, if it
    did); camera URLs a ``LiveSource``. Anything else raises ``SourceError`` with one line naming the scheme
    (credentials never appear in it).

    A file whose detection schedule skips frames (``interval``, ``adaptive``) is decoded on one thread unless
    ``decode_threads`` says otherwise: FFmpeg's frame threads cost more CPU per frame than the frame takes to
    decode on one (0.5 vs 0.3 ms for a still 720p H.264 frame), which is most of what a quiet scene costs, and
    such a source waits for its detections anyway. The frames are the same either way.
    """
    if is_live_url(settings.url):
        from pipelines.sources.live import LiveSource

        return LiveSource(settings.url, settings.options, source_id=settings.id)
    path = file_path(settings.url)
    if path is None:
        raise SourceError(
            f"unsupported source {redact_url(settings.url)!r}: scheme {url_scheme(settings.url)!r} is not one of "
            f"file, {', '.join(LIVE_SCHEMES)} (or a /dev/videoN, webcam:N)")
    from pipelines.sources.file import FileSource

    options = settings.options
    if options.decode_threads == 0 and not settings.schedule.every_frame:
        options = dataclasses.replace(options, decode_threads=1)
    return FileSource(path, settings.id, options, container=looks.take(path) if looks is not None else None)
