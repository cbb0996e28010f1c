"""What a run refuses before it touches anything: outputs that would destroy an input or each other, and a
second run writing the same files.

``check_paths`` resolves every path a run will write (each output after ``{source}`` expansion and the
``_<id>`` suffix, its temporary and rotated files, each state file and its temporary files) and compares it
with every input video, the config files, the model and the other writes: the same file by name after
symlinks and ``..`` are resolved, or by inode (a hard link, or another spelling of the name on a
case-insensitive file system) is a clash, reported as one ``OutputError`` line before anything is opened.

``hold_writes`` then claims each output and state file for as long as the run lasts (``claims.py``): a claim
file ``.<name>.lock`` beside it names the run's PID and its token, a file the run holds locked
(``fcntl.flock``) in each folder it writes into, so the run keeps one file open per folder, not one per output.
The kernel drops the lock when the process ends in any way (``kill -9`` too), so no claim is ever stale; a
second run that would write one of those files refuses at start, naming the file and the other run's PID.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from pipelines.config import PipelineConfig
from pipelines.errors import OutputError
from pipelines.sinks import output_path
from pipelines.sinks._paths import is_stream
from pipelines.sinks.base import OUTPUTS, safe_name
from pipelines.sinks.heatmap_file import check_new, temporary_path
from pipelines.sinks.rotation import segment_pattern
from pipelines.sources.base import file_path
from pipelines.store.config import is_postgres, sqlite_path
from pipelines.store.media import source_folder


@dataclass(frozen=True)
class Write:
    """A file the run writes: ``what`` names it in messages; ``lock`` is True for the files a run owns
    (outputs and state files; temporary files ride on their owner's lock); ``rotates``: finished segments
    are named beside it (and ``--retain`` may delete them)."""

    path: Path
    what: str
    lock: bool = True
    rotates: bool = False


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


def _same(a: Path, b: Path) -> bool:
    """The same file: equal after resolving, or one inode (hard link, case-insensitive name)."""
    if _real(a) == _real(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _special(path: Path) -> bool:
    """A device or pipe (``/dev/null``, ``/dev/stdout``): written through, never replaced, never locked."""
    try:
        return path.exists() and not path.is_file()
    except OSError:
        return False


def _rotates(config: PipelineConfig, key: str) -> bool:
    """Whether output ``key`` rotates: its finished segments are named beside it."""
    out = config.output
    return key != "heatmap" and bool(out.retain_seconds or out.retain_bytes or (
        key == "video" and (out.video_rotate_seconds or out.video_rotate_bytes)) or (
        key in ("jsonl", "events") and (out.jsonl_rotate_bytes or out.jsonl_rotate_seconds)))


def planned_writes(config: PipelineConfig) -> list[Write]:
    """Every file the run will write, with its temporary files."""
    out = config.output
    several = len(config.sources) > 1
    writes: list[Write] = []
    for key, flag in OUTPUTS:
        template = getattr(out, key)
        if template is None:
            continue
        rotates = _rotates(config, key)
        for settings in config.sources:
            path = Path(output_path(template, settings.id, several)).expanduser()
            writes.append(Write(path, f"{flag} of source {settings.id}", rotates=rotates))
            if key == "video":
                writes.append(Write(path.with_name(f".{path.name}.faststart{path.suffix}"),
                                    f"{flag}'s temporary file of source {settings.id}", lock=False))
            if key == "heatmap":
                writes.append(Write(temporary_path(path), f"{flag}'s temporary file of source {settings.id}",
                                    lock=False))
    from pipelines.engine.state import in_redis, restarts_file, snapshot_file

    state = config.state.dir
    if state and not in_redis(state):
        folder = Path(state).expanduser()
        for settings in config.sources:
            writes.append(Write(snapshot_file(folder, settings.id), f"the state file of source {settings.id}"))
            writes.append(Write(restarts_file(folder, settings.id),
                                f"the restart count of source {settings.id}", lock=False))
    db = config.store.db
    if db and not is_postgres(db):  # not locked: runs may share one history (SQLite queues its writers)
        writes.append(Write(sqlite_path(db), "--db", lock=False))
    return writes


def planned_reads(config: PipelineConfig, config_files: Iterable[str] = ()) -> list[tuple[Path, str]]:
    """The files the run reads and must never write: input videos, config files, the model."""
    reads: list[tuple[Path, str]] = []
    for settings in config.sources:
        local = None if settings.is_live else file_path(settings.url)
        if local:
            reads.append((Path(local).expanduser(), f"the input video of source {settings.id}"))
    for name in config_files:
        reads.append((Path(name).expanduser(), "the config file"))
    if config.tracker_config:
        reads.append((Path(config.tracker_config).expanduser(), "the tracker config file"))
    if config.detector.model:
        reads.append((Path(config.detector.model).expanduser(), "the model"))
    return [(path, what) for path, what in reads if path.is_file()]


STILL_IMAGES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic")

# containers the annotated video cannot be written to: suffix -> why (the hint names what works)
REFUSED_CONTAINERS = {
    ".gif": "a GIF cannot hold H.264 video",
    ".webm": "WebM holds only VP8, VP9 or AV1 video, not H.264",
    ".avi": "the AVI writer states a wrong frame count in the file's header",
}
H264 = ("libx264", "h264", "h264_nvenc", "libopenh264")


def check_container(config: PipelineConfig) -> None:
    """Refuse an annotated video whose container cannot hold what the encoder writes (one line, a hint)."""
    template = config.output.video
    if template is None:
        return
    suffix = Path(template).suffix.lower()
    if suffix in STILL_IMAGES:   # whatever the codec: a picture's muxer writes one frame per file, if any
        raise OutputError(f"--out {template}: a picture file cannot hold the annotated video (--heatmap FILE.png "
                          "writes a picture at the end of the run); use .mp4 (plays everywhere), .mkv or .mov")
    why = REFUSED_CONTAINERS.get(suffix)
    if why is None or (suffix != ".avi" and config.output.video_codec not in H264):
        return
    raise OutputError(f"--out {template}: {why}; use .mp4 (plays everywhere), .mkv or .mov")


def check_sources(config: PipelineConfig) -> None:
    """Refuse a still image as a source: a track needs several frames, so its detections would never show."""
    from pipelines.errors import SourceError

    for settings in config.sources:
        local = None if settings.is_live else file_path(settings.url)
        if local and Path(local).suffix.lower() in STILL_IMAGES:
            raise SourceError(f"{local} is a still image: trackstream tracks objects over the frames of a video "
                              "or camera, and a track needs several frames; give a video (or run a detector on "
                              "the picture, e.g. 'yolo predict')")


def check_paths(config: PipelineConfig, config_files: Iterable[str] = ()) -> list[Write]:
    """Refuse (``OutputError``, one line) a run whose writes clash with an input or with each other, whose
    sources share a file name or whose video container is unusable; nothing is created or opened. Returns
    the writes."""
    check_sources(config)
    check_container(config)
    names: dict[str, str] = {}
    for settings in config.sources:
        name = safe_name(settings.id)
        if name in names:
            raise OutputError(f"sources {names[name]!r} and {settings.id!r} would share the file name {name!r} "
                              "(outputs and state): give them different ids (list them under sources: in a --config "
                              "file, each with its own id), or rename one")
        names[name] = settings.id
    _refuse_rotating_streams(config)
    writes = [w for w in planned_writes(config) if not _special(w.path)]
    reads = planned_reads(config, config_files)
    _refuse_written_inputs(writes, reads)
    clash = _first_clash([w.path for w in writes])
    if clash is not None:
        first, second = writes[clash[0]], writes[clash[1]]
        raise OutputError(f"{first.what} and {second.what} are the same file {second.path}: give "
                          "each output its own path")
    _check_media_folders(config, writes)
    return writes


def _refuse_rotating_streams(config: PipelineConfig) -> None:
    """A rotating output renames its live file aside: ``--jsonl /dev/stdout`` would move ``/dev/stdout`` itself."""
    out = config.output
    rotating = {"jsonl": out.jsonl_rotate_bytes or out.jsonl_rotate_seconds,
                "video": out.video_rotate_bytes or out.video_rotate_seconds}
    several = len(config.sources) > 1
    for key, flag in OUTPUTS:
        template = getattr(out, key)
        for settings in config.sources if template is not None and rotating.get(key) else ():
            path = Path(output_path(template, settings.id, several)).expanduser()
            if is_stream(path):   # a folder is refused later, as a folder
                raise OutputError(f"{flag} of source {settings.id}: {path} is a pipe or device, which cannot be "
                                  f"rotated ({flag}-rotate-* needs a file)")


def _identities(path: Path) -> list[tuple[object, ...]]:
    """What makes two paths the same file (``_same``): the name resolved, and an existing file's inode. Compared
    through these, an archive's thousands of paths are checked in one pass rather than pair by pair (which took
    4 s for 300 files and grew with the square of their number)."""
    keys: list[tuple[object, ...]] = [("name", _real(path))]
    try:
        st = os.stat(path.expanduser())
        keys.append(("inode", st.st_dev, st.st_ino))
    except (OSError, ValueError):
        pass
    return keys


def _refuse_written_inputs(writes: Sequence[Write], reads: Sequence[tuple[Path, str]]) -> None:
    """The first write (in order) that is one of ``reads``, or would name a read like its finished segment, is
    refused with the first such read."""
    same: dict[tuple[object, ...], int] = {}
    by_folder: dict[Path, list[int]] = {}
    for index, (path, _) in enumerate(reads):
        for key in _identities(path):
            same.setdefault(key, index)
        by_folder.setdefault(_real(path).parent, []).append(index)
    for write in writes:
        hits = [same[key] for key in _identities(write.path) if key in same]
        segments = [i for i in by_folder.get(_real(write.path).parent, ()) if write.rotates
                    and segment_pattern(write.path).match(reads[i][0].name)]
        if not hits and not segments:
            continue
        index = min(hits + segments)
        path, what = reads[index]
        if index in hits:
            raise OutputError(f"{write.what} {write.path} is {what} ({path}): refusing to overwrite it; "
                              "choose another output path")
        raise OutputError(f"{what} {path} is named like a finished segment of {write.what} "
                          f"{write.path}: rotation or --retain could replace or delete it; move it or "
                          "choose another output path")


def _first_clash(paths: Sequence[Path]) -> Optional[tuple[int, int]]:
    """The first pair of ``paths`` (in order: the earliest first, then its earliest partner) that are one file."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, path in enumerate(paths):
        for key in _identities(path):
            groups.setdefault(key, []).append(index)
    pairs = [(group[0], group[1]) for group in groups.values() if len(group) > 1]
    return min(pairs) if pairs else None


def _check_media_folders(config: PipelineConfig, writes: Iterable[Write]) -> None:
    """A file output where ``--media`` or a source's folder in it goes (``--db same --media same``): every
    snapshot and clip of the run would fail."""
    if not (config.store.db and config.store.media):
        return
    root = Path(config.store.media).expanduser()
    folders = [(root, "the --media folder")] + [
        (root / source_folder(s.id), f"the --media folder of source {s.id}") for s in config.sources]
    named: dict[tuple[object, ...], str] = {}
    for folder, what in folders:
        for key in _identities(folder):
            named.setdefault(key, what)
    for write in writes:
        folder_of = next((named[key] for key in _identities(write.path) if key in named), None)
        if folder_of is not None:
            raise OutputError(f"{write.what} {write.path} is {folder_of}: give each its own path")


def check_new_outputs(config: PipelineConfig) -> None:
    """Refuse (``OutputError``, one line) an output path that names a file the user already has, unless
    ``output.overwrite`` (``--overwrite``; for the heatmap also ``output.heatmap_overwrite``), or the output
    moves an earlier file aside (``_moves_aside``: a rotating JSONL file), or ``--state`` answers for it
    (``_spared``: the saved state's run wrote that very file). An empty file holds nothing to lose; devices are
    written through. Called once the run holds its locks, so a file another run is writing is reported as
    that."""
    out = config.output
    if out.overwrite:
        return
    several = len(config.sources) > 1
    checked = [(key, flag, template) for key, flag in OUTPUTS
               if (template := getattr(out, key)) is not None and not _moves_aside(config, key)]
    for settings in config.sources if checked else ():
        saved = _saved_outputs(config, settings.id)   # read once per source, whatever its outputs
        for key, flag, template in checked:
            path = Path(output_path(template, settings.id, several)).expanduser()
            if _special(path):
                continue
            if key == "video" and not config.state.fresh:
                _refuse_foreign_part(flag, settings.id, path, saved)
            if _spared(config, saved, path, key):
                continue
            if key == "heatmap":
                check_new(path, out.heatmap_overwrite, settings.id)
            elif _holds_data(path) and isinstance(saved, dict) and not config.state.fresh and not settings.is_live:
                # a resumed file refuses an added output (fingerprint.py), so another path is no way out; a camera
                # takes one, and starting over would throw its track IDs and counts away
                raise OutputError(f"{flag} of source {settings.id}: {path} exists and the run saved in --state does "
                                  "not continue it (it failed there before its first snapshot, or this run adds "
                                  f"it); refusing to replace it (leave {flag} out to resume, or start over: "
                                  "--fresh-state --overwrite)")
            elif _holds_data(path) and not config.state.fresh and _no_snapshot(config, settings.id):
                # the same command run again after a kill before the first snapshot: the user expects a resume
                raise OutputError(f"{flag} of source {settings.id}: {path} exists and --state {config.state.dir} "
                                  f"holds no snapshot of {settings.id} to continue it (there is none before a run's "
                                  "first snapshot, which with --out waits for the video's first 2 s to be encoded, "
                                  f"nor once it is removed); refusing to replace it (start {settings.id} over with "
                                  "--overwrite, or choose another path)")
            elif _holds_data(path):
                raise OutputError(f"{flag} of source {settings.id}: {path} exists; refusing to replace it (choose "
                                  "another path, or --overwrite / output.overwrite: true)")


def _refuse_foreign_part(flag: str, source_id: str, path: Path, saved: object) -> None:
    """A resumed video goes on in its next part file (``NAME.partN.ext``), which the snapshot does not name: a file
    of the user's there is refused like the output itself. One trackstream wrote (its header holds a segment id:
    a try of this same resume killed before a snapshot named it) is written again."""
    recorded = saved.get("video") if isinstance(saved, dict) else None
    part = recorded.get("part") if isinstance(recorded, dict) else None
    if not isinstance(part, int):
        return
    from pipelines.sinks.video import part_path, segment_id

    following = Path(part_path(str(path), part + 1))
    if _holds_data(following) and segment_id(following) is None:
        raise OutputError(f"{flag} of source {source_id}: {following} exists; refusing to replace it (the resumed "
                          "video goes on in that file; move it away, or --overwrite / output.overwrite: true)")


def _moves_aside(config: PipelineConfig, key: str) -> bool:
    """Whether output ``key`` moves an earlier live file aside as a finished segment rather than replace it:
    a rotating JSONL file (``jsonl_rotate_*``); the video, events and MOT files are opened anew."""
    out = config.output
    return key == "jsonl" and bool(out.jsonl_rotate_bytes or out.jsonl_rotate_seconds)


def _holds_data(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


_UNREADABLE = object()   # a saved state that could not be read: the run stops on it, naming it


def _no_snapshot(config: PipelineConfig, source_id: str) -> bool:
    """Whether a ``--state`` folder is given and holds no snapshot of ``source_id`` (under its name or an older
    trackstream's name for it)."""
    from pipelines.engine.state import in_redis, legacy_snapshot, snapshot_file

    state = config.state.dir
    if not state or in_redis(state):
        return False
    folder = Path(state).expanduser()
    return not snapshot_file(folder, source_id).exists() and legacy_snapshot(folder, source_id) is None


def _saved_outputs(config: PipelineConfig, source_id: str) -> object:
    """The ``outputs`` of ``source_id``'s saved state (``--state``; None: none saved), or ``_UNREADABLE`` for a
    state that cannot be read: a damaged file, one that holds no state, or a state in Redis that cannot be read
    (the run itself stops on it in one line naming it, which an output refused here would hide)."""
    state = config.state.dir
    if not state:
        return None
    from pipelines.engine.state import in_redis, legacy_snapshot, open_store, snapshot_file

    saved: object = None
    if in_redis(state):
        try:
            saved = open_store(state).load(source_id)
        except Exception:  # noqa: BLE001 - unreachable, refused, unreadable: reported by the run in one line
            return _UNREADABLE
    else:
        import json

        folder = Path(state).expanduser()
        try:   # read here, not through the state store, which would create the folder: nothing is made yet
            saved = json.loads(snapshot_file(folder, source_id).read_text(encoding="utf-8"))
        except FileNotFoundError:   # an older trackstream's name for it (ASCII only), when it is this source's
            found = legacy_snapshot(folder, source_id)
            saved = found[1] if found is not None else None
        except (OSError, ValueError):   # damaged, or a folder: the run stops on it, naming the file
            return _UNREADABLE
        else:
            if not isinstance(saved, dict):   # JSON, but no state: the same
                return _UNREADABLE
    return saved.get("outputs") if isinstance(saved, dict) else None


def _spared(config: PipelineConfig, saved: object, path: Path, key: str) -> bool:
    """Whether ``--state`` answers for output ``key`` at ``path``, given its source's saved ``outputs``
    (``_saved_outputs``): the saved state names that very file (the run continues it, or with ``--fresh-state``
    starts it over; the heatmap PNG, a finished picture, only when continued), or, resumed, names another one
    (the resume refuses that itself, naming both). A state that cannot be read counts too, unless
    ``--fresh-state`` (which reads none) starts over."""
    if saved is _UNREADABLE:
        return not config.state.fresh
    recorded = saved.get(key) if isinstance(saved, dict) else None
    where = recorded.get("path") if isinstance(recorded, dict) else None
    if not isinstance(where, str):
        return False
    if config.state.fresh:   # starting over rewrites the discarded run's own files, but not its finished picture
        from pipelines.engine.fingerprint import same_output

        return key != "heatmap" and (_same(Path(where), path) or same_output(where, str(path), key))
    return True


class WriteLocks:
    """The locks of one run (``claims.Claims``: see the module docstring); ``release()`` (or the process ending)
    drops them."""

    def __init__(self) -> None:
        from pipelines.engine.claims import Claims

        self._claims = Claims()

    def acquire(self, write: Write) -> None:
        lock = lock_path(write.path)
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # the output's own check reports the folder in one line
        try:
            self._claims.claim(lock, write.what, write.path)
        except OutputError:
            raise
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):   # the process's limit, not the folder: said as that
                raise
            if write.what.startswith("the state file"):
                raise OutputError(f"cannot write the state folder {write.path.parent}: "
                                  f"{exc.strerror or exc}") from None
            # an unwritable output folder: the output's own check reports it

    def release(self) -> None:
        """Remove the claims and drop the locks."""
        self._claims.release()

    @property
    def descriptors(self) -> int:
        """Files held open for the locks (one per folder written into)."""
        return self._claims.descriptors


def lock_path(path: Path) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` beside the file it resolves to."""
    real = _real(path)
    return real.with_name(f".{real.name}.lock")


@contextlib.contextmanager
def hold_writes(config: PipelineConfig, config_files: Sequence[Optional[str]] = (),
                lock: bool = True) -> Iterator[list[Write]]:
    """``check_paths``, then (``lock``) hold a lock on every output and state file until the block ends."""
    writes = check_paths(config, [name for name in config_files if name])
    locks = WriteLocks()
    try:
        for write in writes:
            if write.lock and lock:
                locks.acquire(write)
        yield writes
    finally:
        locks.release()
