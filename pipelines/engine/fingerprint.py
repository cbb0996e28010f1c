"""What a saved state belongs to: a fingerprint of its source and the paths of its outputs.

A snapshot records ``source``: for a file its size, the frame count its container states and a SHA-256 of its
first and last MiB (cheap for any length, and different for another video of the same name), and one of its
last part alone (``sha256_tail``: the last MiB, or the second half of a smaller file); for a camera its URL
without credentials. ``check_resume`` compares that, and each saved output path, with what this run has: a
difference is one ``StateError`` line saying what differs and how to start over (``--fresh-state``, or
removing the state file), so a state is never applied to another video and never cuts an unrelated file. A file
output that a resumed video adds is refused the same way: it would start mid-video.

A recording that was still being written has only grown since (``grown_since``): it is larger, and what was its
last part is still there, byte for byte. That is the same video, and its state resumes. Its first bytes are not
compared: a recorder finishing an MKV writes its duration and index into the header.

A snapshot written before fingerprints existed is resumed with one warning (it cannot be checked).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Mapping, Optional

from pipelines.engine.resume_settings import Place, compare, run_settings
from pipelines.processing.processor import StateError
from pipelines.secrets import strip_credentials
from pipelines.settings import SourceSettings
from pipelines.sinks.base import OUTPUTS
from pipelines.sources.base import Source, file_path

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig
    from pipelines.engine.state import SnapshotStore

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes hashed at each end of a file
TAIL = "sha256_tail"   # the fingerprint's hash of a file's last part alone (``grown_since``)


def start_over(where: str, source_id: str, several: bool) -> str:
    """How to start ``source_id`` over, saved in ``where``, said the same way wherever a resume is refused or
    warned about; ``several``: the run has other sources, whose progress ``--fresh-state`` would throw away too."""
    if several:
        return (f"remove {where} and run with --overwrite to start {source_id} over; --fresh-state starts every "
                "source over")
    return "--fresh-state starts over"


def source_fingerprint(settings: SourceSettings, frame_count: Optional[int] = None) -> dict[str, Any]:
    """``{"camera": url}`` for a live source; ``{"size": ..., "frames": ..., "sha256_ends": ...}`` for a file."""
    local = None if settings.is_live else file_path(settings.url)
    if local is None or not os.path.isfile(local):
        return {"camera": strip_credentials(settings.url)}
    digest = hashlib.sha256()
    with open(local, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest.update(f.read(CHUNK))
        if size > CHUNK:
            f.seek(max(CHUNK, size - CHUNK))
            digest.update(f.read(CHUNK))
        tail = _tail_digest(f, size)
    return {"size": size, "frames": frame_count, "sha256_ends": digest.hexdigest(), TAIL: tail}


def _tail_digest(f: BinaryIO, size: int) -> str:
    """SHA-256 of the last part of the first ``size`` bytes of ``f``: the last MiB, or the second half when
    shorter (never the header of a small file, which a recorder may rewrite when it finishes)."""
    length = min(CHUNK, size // 2)
    f.seek(size - length)
    return hashlib.sha256(f.read(length)).hexdigest()


def _identity(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """What tells one video from another (``sha256_tail`` tells only how it grew; a state saved before it was
    recorded resumes as before)."""
    return {k: v for k, v in fingerprint.items() if k != TAIL}


def grown_since(recorded: Any, settings: SourceSettings) -> int:
    """Bytes the file of ``settings`` gained since ``recorded`` (the source fingerprint of a saved state) was
    taken, when it only grew: larger now, and its earlier last part still in place (``sha256_tail``). 0 when it
    did not grow, was replaced or changed otherwise, or ``recorded`` cannot tell (a camera, an older state)."""
    local = None if settings.is_live else file_path(settings.url)
    size = recorded.get("size") if isinstance(recorded, Mapping) else None
    tail = recorded.get(TAIL) if isinstance(recorded, Mapping) else None
    if local is None or not isinstance(size, int) or not isinstance(tail, str):
        return 0
    try:
        with open(local, "rb") as f:
            now = os.fstat(f.fileno()).st_size
            return now - size if now > size and _tail_digest(f, size) == tail else 0
    except OSError:
        return 0


def output_paths(output: Any, source_id: str, several: bool) -> dict[str, str]:
    """Sink name -> the path this run writes for ``source_id`` (``output``: the ``output:`` config section)."""
    from pipelines.sinks import output_path

    names = ("video", "jsonl", "mot", "events", "heatmap")
    return {name: output_path(getattr(output, name), source_id, several) for name in names
            if getattr(output, name)}


def same_output(saved: str, current: str, name: str) -> bool:
    """Whether the output ``name`` a snapshot recorded at ``saved`` is the one this run writes at ``current`` (a
    resumed video goes on in ``NAME.partN.ext``)."""
    if os.path.realpath(saved) == os.path.realpath(current):
        return True
    if name == "video":  # a resumed video goes on in NAME.partN.ext
        path = Path(current)
        return re.fullmatch(rf"{re.escape(path.stem)}\.part\d+{re.escape(path.suffix)}", Path(saved).name) is not None \
            and os.path.realpath(Path(saved).parent) == os.path.realpath(path.parent)
    return False


def check_resume(saved: Mapping[str, Any], settings: SourceSettings, current: Mapping[str, Any],
                 outputs: Mapping[str, str], where: str, warn: bool = True, several: bool = False,
                 configured: Optional[Mapping[str, Any]] = None) -> list[Place]:
    """Refuse (``StateError``) a snapshot of another source or other outputs; ``outputs``: sink name -> the path
    this run writes; ``warn``: say so when the snapshot has no fingerprint to check, and name the settings
    (``configured``: this run's ``run_settings``) that differ from the saved run's; ``several``: the run has
    other sources, which ``--fresh-state`` would start over too. Returns the zones and lines this run moved
    (their saved state is to be dropped: ``resume_settings.forget_places``)."""
    recorded = saved.get("source")
    if not isinstance(recorded, dict):
        if warn:
                log.warning("%s: saved state %s has no source fingerprint (an older trackstream): resuming without "
                        "checking it is the same video", settings.id, where)
    again = start_over(where, settings.id, several)
    if isinstance(recorded, dict) and _identity(recorded) != _identity(current) and not grown_since(recorded, settings):
        what = ", ".join(f"{k} {recorded.get(k)!r} -> {current.get(k)!r}"
                         for k in sorted(set(recorded) | set(current)) if recorded.get(k) != current.get(k)
                         and k not in ("sha256_ends", TAIL))
        if "camera" not in recorded and recorded.get("sha256_ends") != current.get("sha256_ends"):
            what = f"{what}, content" if what else "content"
        raise StateError(f"saved state {where} belongs to another source than {settings.id} (differs in {what}); "
                         f"{again}")
    saved_outputs = saved.get("outputs")
    if isinstance(saved_outputs, dict) and not settings.is_live:
        _refuse_added_output(saved, saved_outputs, settings, outputs, where, again)
    for name, position in (saved.get("outputs") or {}).items():
        path = position.get("path") if isinstance(position, dict) else None
        if not isinstance(path, str):
            continue
        if name not in outputs:
            raise StateError(f"saved state {where} continues {name} output {path}, which this run does not write; "
                             f"give the same output again to resume; {again}")
        if not same_output(path, outputs[name], name):
            raise StateError(f"saved state {where} continues {name} output {path}, this run writes "
                             f"{outputs[name]}; give the same path to resume; {again}")
    recorded_settings = saved.get("settings")
    if configured is not None and isinstance(recorded_settings, dict):
        return _check_settings(recorded_settings, configured, settings.id, where, warn, several)
    return []


def _check_settings(saved: Mapping[str, Any], configured: Mapping[str, Any], source_id: str, where: str,
                    warn: bool, several: bool) -> list[Place]:
    """``warn``: name, in one line, every setting that differs from the saved run's (``resume_settings.compare``;
    a zone or line moved under its name is said to count from 0: the caller drops its saved state). Returns the
    zones and lines moved."""
    moved, changed = compare(saved, configured)
    if changed and warn:
        log.warning("%s: resuming with settings that differ from the saved run's: %s; the outputs will mix both "
                    "(%s)", source_id, ", ".join(changed), start_over(where, source_id, several))
    return moved


def _refuse_added_output(saved: Mapping[str, Any], saved_outputs: Mapping[str, Any], settings: SourceSettings,
                         outputs: Mapping[str, str], where: str, again: str) -> None:
    """Refuse (``StateError``) a file output this run adds to a resumed file: it would start mid-video (after the
    frames the saved state's run processed) and miss the frames before, unlike the outputs that continue;
    ``again``: how to start over (``start_over``)."""
    processor = saved.get("processor")
    if not isinstance(processor, dict) or not processor.get("frames_processed"):  # nothing processed: none missed
        return
    clock = processor.get("clock")
    last = clock.get("last_index") if isinstance(clock, dict) else None
    for name, flag in OUTPUTS:
        if name == "heatmap" and processor.get("heatmap") is not None:
            continue   # the saved run accumulated the heat from its first frame: the PNG, drawn at the end, has it all
        if name in outputs and name not in saved_outputs:
            raise StateError(f"{flag} (output.{name}) {outputs[name]} is not in the run saved in {where}: resumed, "
                             f"it would start after frame {last} of {settings.id} and miss the frames before; leave "
                             f"it out to resume; {again} (every output from the first frame)")


def check_resumes(opened: Iterable[tuple[SourceSettings, Source]], config: "PipelineConfig",
                  state: Optional["SnapshotStore"]) -> dict[str, dict[str, Any]]:
    """``check_resume`` for every opened source with a saved snapshot in ``state``. The CLI calls it before the
    model loads, so a refused resume costs no model load; the runner checks again (and warns) as it resumes.
    Returns the fingerprints it took, by source id, for the runner (``Runner(fingerprints=)``): a file's is read
    once."""
    taken: dict[str, dict[str, Any]] = {}
    if state is None or config.state.fresh:
        return taken
    several = len(config.sources) > 1
    for settings, source in opened:
        saved = state.load(settings.id)
        if saved is not None:
            taken[settings.id] = source_fingerprint(settings, source.frame_count)
            check_resume(saved, settings, taken[settings.id], output_paths(config.output, settings.id, several),
                         state.path(settings.id), warn=False, several=several,
                         configured=run_settings(config, settings))
    return taken
