"""The ``heatmap`` sink: one PNG per source at the end of the run (``--heatmap FILE``, ``output.heatmap``).

The picture is the source's last frame with its heatmap (``FrameResult.heat``, accumulated by the
processor: ``pipelines/processing/heatmap.py``) laid over it: blue where tracks' ground points were
seldom, red where they were most, the frame unchanged where none was. It has the frame's size. It is written
once, when the source's lane closes (its end, ``--max-frames``, or a stop), to a temporary file beside it
and then renamed, so the PNG is never half-written. An existing file is refused at start unless
``output.heatmap_overwrite`` (``--heatmap-overwrite``) allows replacing it (``check_new``), or the run continues
a saved state (``--state``) whose run wrote it. The heatmap's accumulation is in the state, so a resumed run's
PNG holds the heat of the whole video, as an uninterrupted run's does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional

from pipelines.errors import OutputError
from pipelines.frames import BaseSink, FrameResult
from pipelines.processing.heatmap import PICTURE_ALPHA, PICTURE_SUFFIXES, blend
from pipelines.sinks._paths import prepare_output
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry

log = logging.getLogger(__name__)


def temporary_path(path: Path) -> Path:
    """Where the PNG is written before it is renamed into place: ``.NAME.tmp.png`` beside it."""
    return path.with_name(f".{path.name}.tmp.png")


def check_new(path: "str | os.PathLike[str]", overwrite: bool, source_id: str) -> None:
    """Refuse (``OutputError``, one line) a heatmap path that names an existing file, unless ``overwrite``."""
    out = Path(os.fspath(path)).expanduser()
    if not overwrite and out.is_file():
        raise OutputError(f"--heatmap of source {source_id}: {out} exists; refusing to replace it "
                          "(choose another path, or --heatmap-overwrite / output.heatmap_overwrite: true)")


class HeatmapFileSink(BaseSink):
    """Keeps the newest frame and heat of one source; writes the PNG at ``close``.

    Raises:
        OutputError: at construction when the file cannot be created (or exists and ``overwrite`` is off),
            at ``close`` when it cannot be written.
    """

    def __init__(self, path: "str | os.PathLike[str]", source_id: str, overwrite: bool = False) -> None:
        check_new(path, overwrite, source_id)
        self.path = prepare_output(path, "heatmap", keep=False)
        self.source_id = source_id
        self._last: Optional[FrameResult] = None
        self.written = False

    def write(self, result: FrameResult) -> None:
        """Remember ``result`` (a reference: nothing is drawn until the end)."""
        if result.heat is not None:
            self._last = result

    def position(self) -> Optional[Mapping[str, object]]:
        """The PNG's path (the summary names it; nothing to continue: it is written whole at the end)."""
        return {"path": str(self.path)}

    def close(self) -> None:
        """Write the PNG (once; nothing when no frame was processed)."""
        last, self._last = self._last, None
        if last is None or last.heat is None:
            if not self.written:
                log.warning("heatmap of source %s: no frame was processed, %s not written", self.source_id,
                            self.path)
            return
        import cv2

        picture = blend(last.frame.image, last.heat.total, PICTURE_ALPHA)
        kind = self.path.suffix.lower() if self.path.suffix.lower() in PICTURE_SUFFIXES else ".png"   # no suffix
        ok, data = cv2.imencode(kind, picture)
        if not ok:
            raise OutputError(f"cannot encode the heatmap {self.path} as {kind[1:].upper()}")
        temporary = temporary_path(self.path)
        try:
            temporary.write_bytes(data.tobytes())
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise OutputError(f"cannot write heatmap {self.path}: {exc.strerror or exc}") from None
        self.written = True


def _build(ctx: SinkContext) -> HeatmapFileSink:
    out = ctx.config.output
    assert out.heatmap is not None
    # a run continuing its saved state (--state) replaces the PNG of the run it continues
    return HeatmapFileSink(ctx.path(out.heatmap), ctx.settings.id,
                           out.overwrite or out.heatmap_overwrite or ctx.resume is not None)


ENTRY = SinkEntry("heatmap", DropPolicy.BLOCK, lambda config: bool(config.output.heatmap), _build)
