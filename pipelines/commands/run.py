"""`trackstream run SOURCE...`: detect and track objects in video files or cameras and write the results.

Every flag maps onto a config key (``configs/default.yaml``); flags win over the ``--config`` file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Optional, Sequence

from pipelines.settings import glob_ids
from pipelines.credentials import DB_PASSWORD_NEEDS, REDIS_STATE, add_secret_arguments, fill_secrets
from pipelines.config import PipelineConfig, build_config, read_config_file, set_dotted
from pipelines.engine.fingerprint import check_resumes
from pipelines.engine.launch import (Opened, StopSignals, claim_writes, preflight, skip_unreadable, warn_unsaved,
                                     with_open_sources)
from pipelines.engine.progress import Progress, summary_lines
from pipelines.engine.state import open_store
from pipelines.errors import SKIPPED_EXIT, DataLossError, SourceError
from pipelines.store.config import is_postgres
from tracker.configutil import ConfigError

if TYPE_CHECKING:
    from pipelines.sources.looks import FirstLooks

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def _amount(part: str, letters: str) -> tuple[float, str]:
    """``"1.5gb"`` -> ``(1.5, "gb")``: the number and the unit after it (its letters among ``letters``); the number
    is -1 where it is none, so a caller's ``0 < value < inf`` check refuses it (as it refuses nan and inf)."""
    number = part.rstrip(letters)
    try:
        return float(number), part[len(number):]
    except ValueError:
        return -1.0, part[len(number):]


def byte_size(text: str) -> int:
    """``5000000``, ``100MB``, ``1.5GB`` (decimal units, as ``--retain``'s sizes) -> bytes."""
    value, unit = _amount(text.strip().lower(), "bgkmt")
    unit = unit or "b"
    if unit not in ("b", "kb", "mb", "gb", "tb") or not 0 < value < float("inf") or value * _UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 100MB, 2GB or 5000000 (bytes), got {text!r}")
    return int(value * _UNITS[unit])


# (flag, config key, argparse keyword arguments)
VALUE_FLAGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--model", "detector.model", {"metavar": "M", "help": "weights file (.pt, .onnx, .engine, ...) or "
                                   "architecture yaml; default: the bundled YOLO11n-pose demo model"}),
    ("--out", "output.video", {"metavar": "OUT.mp4", "help": "write the annotated video here"}),
    ("--jsonl", "output.jsonl", {"metavar": "OUT.jsonl", "help": "write one JSON record per frame here"}),
    ("--mot", "output.mot", {"metavar": "OUT.txt", "help": "write tracks in MOTChallenge format here"}),
    ("--events", "output.events", {"metavar": "EVENTS.jsonl",
                                   "help": "write every event (track, zone, line, stream) as JSON Lines here"}),
    ("--heatmap", "output.heatmap", {"metavar": "OUT.png", "help": "at the end, write a PNG of where tracks' "
                                     "ground points were (the last frame with a heatmap over it; .jpg, .webp "
                                     "or .bmp: that format; other suffixes are refused); an existing file is "
                                     "refused unless --heatmap-overwrite"}),
    ("--heatmap-half-life", "heatmap.half_life_seconds",
     {"type": float, "metavar": "S", "help": "switch the heatmap on (for the live view too); heat fades by half "
                                             "every S seconds of video (default: the whole run counts the same)"}),
    ("--state", "state.dir", {"metavar": "DIR", "help": "save each source's state (tracks, events, counts, "
                              "output positions) in DIR (or redis://HOST:PORT/DB, for --engine ray) every few "
                              "seconds and at exit, and continue from it at start: a camera keeps its IDs and "
                              "counts, an interrupted video resumes"}),
    ("--state-interval", "state.interval", {"type": float, "metavar": "S",
                                            "help": "seconds between state snapshots (default 5)"}),
    ("--vid-stride", "source.vid_stride", {"type": int, "metavar": "N", "help": "process every Nth frame"}),
    ("--max-fps", "source.max_fps", {"type": float, "metavar": "F",
                                      "help": "process at most F frames per second of video time"}),
    ("--imgsz", "detector.imgsz", {"type": int, "metavar": "PX", "help": "detector input size"}),
    ("--conf", "detector.conf", {"type": float, "metavar": "C", "help": "minimum detection confidence"}),
    ("--device", "detector.device", {"metavar": "DEV", "help": "auto, cpu, cuda or cuda:N"}),
    ("--batch", "detector.batch", {"type": int, "metavar": "N", "help": "most frames per detector call (default: "
                                   "4 on a CPU, 1 for cameras with a --schedule; on CUDA every live stream's "
                                   "newest frame, up to 64, or 16 of a file)"}),
    ("--preprocess", "detector.preprocess", {"choices": ["auto", "cpu", "device"],
                                             "help": "letterbox frames on the CPU or on the detector's device "
                                                     "(default auto: on the GPU with CUDA)"}),
    ("--schedule", "detector.schedule", {"metavar": "S",
                                         "help": "which frames the detector runs on: every (default), interval:K "
                                                 "(every K-th frame), interval:Ss (every S seconds of video) or "
                                                 "adaptive (when the scene needs it); the tracker predicts the "
                                                 "others"}),
    ("--workers", "detector.workers", {"type": int, "metavar": "N",
                                       "help": "model copies detecting at once (default: 2 for .pt, .onnx or "
                                               "OpenVINO models on a multi-core CPU, but 1 when the run's only "
                                               "source has a --schedule other than every; else 1)"}),
    ("--runtime", "detector.runtime", {"choices": ["auto", "torch", "onnx", "openvino"],
                                       "help": "what runs the model (default auto: on a CPU, .pt weights are "
                                               "exported once to OpenVINO and ONNX, cached, and the faster "
                                               "here, timed once, runs; docs/cpu.md)"}),
    ("--jsonl-rotate-bytes", "output.jsonl_rotate_bytes",
     {"type": byte_size, "metavar": "SIZE",
      "help": "start a new JSONL file past this size (bytes, or with a unit: 100MB, 2GB)"}),
    ("--jsonl-rotate-seconds", "output.jsonl_rotate_seconds",
     {"type": float, "metavar": "S", "help": "start a new JSONL file every S seconds"}),
    ("--out-rotate-seconds", "output.video_rotate_seconds",
     {"type": float, "metavar": "S", "help": "start a new video segment every S seconds (e.g. 600)"}),
    ("--out-rotate-bytes", "output.video_rotate_bytes",
     {"type": byte_size, "metavar": "SIZE",
      "help": "start a new video segment past this size (bytes, or with a unit: 500MB, 2GB)"}),
    ("--redis", "redis.url", {"metavar": "URL", "help": "publish to Redis Streams at redis://host:port/db"}),
    ("--mqtt", "mqtt.url", {"metavar": "URL", "help": "publish events, zone/line counts and state to an MQTT "
                            "broker at mqtt://[user:pass@]host:port[/prefix] (mqtts:// for TLS)"}),
    ("--metrics-port", "metrics.port",
     {"metavar": "[HOST:]PORT", "help": "serve Prometheus metrics at http://HOST:PORT/metrics; HOST defaults to "
                                       "127.0.0.1 (0.0.0.0: every interface); needs the web token when one is set"}),
    ("--http", "http.listen", {"metavar": "[HOST:]PORT",
                               "help": "serve the live view (every source's annotated picture, tracks, counts and "
                                       "health) at http://HOST:PORT/ while running; HOST defaults to 127.0.0.1, "
                                       "0.0.0.0 serves every interface (see docs/web.md)"}),
    ("--http-cert", "http.cert", {"metavar": "CERT.pem", "help": "serve the live view over HTTPS with this "
                                  "certificate (chain); needs --http-key"}),
    ("--http-key", "http.key", {"metavar": "KEY.pem", "help": "the private key of --http-cert"}),
    ("--engine", "cluster.engine", {"choices": ["local", "ray"], "help": "local: this process (default); ray: "
                                   "sources in Ray actors, files spread over workers, cameras as restartable "
                                   "actors (needs pip install 'trackstream[ray]'; docs/cluster.md)"}),
    ("--ray-address", "cluster.address", {"metavar": "HOST:PORT", "help": "with --engine ray: join this running "
                                          "Ray cluster (default: RAY_ADDRESS, else an embedded local Ray)"}),
    ("--cameras-per-actor", "cluster.cameras_per_actor",
     {"type": int, "metavar": "N", "help": "with --engine ray: cameras sharing one actor (one model, shared "
                                           "detector batches); default 4"}),
    ("--gpus-per-actor", "cluster.gpus_per_actor",
     {"type": float, "metavar": "F", "help": "with --engine ray: GPU fraction per actor (0.25: four per GPU)"}),
    ("--file-workers", "cluster.file_workers",
     {"type": int, "metavar": "N", "help": "with --engine ray: workers processing files at once (default: as "
                                           "many as the cluster's CPUs allow)"}),
    ("--db", "store.db", {"metavar": "PATH_OR_URL", "help": "keep every event and one row per track in this "
                          "database: a SQLite file (events.db) or postgresql://user:pass@host/db for several "
                          "processes; search it with `trackstream events` (docs/events.md)"}),
    ("--media", "store.media", {"metavar": "DIR", "help": "with --db: save each track's best snapshot and a clip "
                                "around each zone entry and line crossing in DIR"}),
    ("--http-token", "http.token", {"metavar": "TOKEN", "help": "the live view (and /metrics) asks for this token "
                                    "(open /?token=TOKEN once; or header Authorization: Bearer TOKEN); better "
                                    "--http-token-file or TRACKSTREAM_HTTP_TOKEN, which ps does not show"}),
)
# (flag, overlay key) for the --no-* switches
OVERLAY_FLAGS = (("--no-boxes", "boxes"), ("--no-labels", "labels"), ("--no-trails", "trails"),
                 ("--no-path", "predicted_path"), ("--no-masks", "masks"), ("--no-keypoints", "keypoints"),
                 ("--no-zones", "zones"))


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def retain_spec(text: str) -> dict[str, float]:
    """``7d``, ``500GB`` or both (``7d,500GB``) -> ``{"retain_seconds": ..., "retain_bytes": ...}``."""
    out: dict[str, float] = {}
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        value, unit = _amount(part, "smhdbgkt")
        if unit not in _UNITS or not 0 < value < float("inf"):   # nan, inf: int(inf) was a traceback
            raise argparse.ArgumentTypeError(f"expected an age like 12h or 7d and/or a size like 500GB, got {part!r}")
        key = "retain_seconds" if unit in ("s", "m", "h", "d") else "retain_bytes"
        out[key] = value * _UNITS[unit] if key == "retain_seconds" else int(value * _UNITS[unit])
    return out


def _classes(text: str) -> list[int]:
    try:
        return [int(c) for c in text.replace(" ", "").split(",") if c]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class ids like 0,2,5; got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``run`` (shared with the benchmark)."""
    parser.add_argument("sources", nargs="*", metavar="SOURCE",
                        help="video file, folder of videos, quoted glob ('archive/*.mp4'), rtsp://, http(s)://, "
                             "rtmp:// URL, /dev/videoN or webcam:N")
    parser.add_argument("--source", action="append", default=[], metavar="URL", dest="extra_sources",
                        help="another source (repeatable)")
    parser.add_argument("--config", metavar="FILE", help="YAML config (see configs/default.yaml)")
    for flag, _key, kwargs in VALUE_FLAGS:
        parser.add_argument(flag, dest=_dest(flag), default=None, **kwargs)
    add_secret_arguments(parser)
    parser.add_argument("--retain", type=retain_spec, default=None, metavar="AGE,SIZE",
                        help="delete the oldest rotated segments of the outputs, and with --media the oldest "
                             "snapshots and clips of each source, beyond an age (12h, 7d) and/or a total size "
                             "(500GB) per output; only trackstream's own segment and media files are touched")
    parser.add_argument("--fresh-state", action="store_true", default=None,
                        help="with --state: discard each source's saved state and start over (a state saved for "
                             "another video or other outputs is refused without it)")
    parser.add_argument("--classes", type=_classes, default=None, metavar="IDS",
                        help="only these class ids, comma-separated (e.g. 0,2)")
    parser.add_argument("--mqtt-discovery", action="store_true", default=None,
                        help="with --mqtt: announce each zone's and line's counts to Home Assistant (MQTT "
                             "discovery), one device per source")
    parser.add_argument("--heatmap-overwrite", action="store_true", default=None,
                        help="let --heatmap replace an existing file")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="let the outputs (--out, --jsonl, --mot, --events, --heatmap) replace existing "
                             "files; without it a run refuses to start rather than replace one")
    parser.add_argument("--heatmap-overlay", action="store_true", default=None,
                        help="draw the heatmap under the tracks in the annotated video and the live view")
    parser.add_argument("--realtime", action="store_true", default=None,
                        help="play files at their own pace like a camera; frames the detector cannot "
                             "keep up with are dropped (and counted)")
    for flag, _key in OVERLAY_FLAGS:
        parser.add_argument(flag, dest=_dest(flag), action="store_true",
                            help=f"do not draw {_key.replace('_', ' ')}")
    parser.add_argument("--source-id", metavar="ID", help="id of the (single) source in outputs and streams")
    parser.add_argument("--max-frames", type=int, metavar="N",
                        help="stop each source after N frames, counted after --vid-stride and --max-fps pick "
                             "them (a run resumed from --state takes N more; from a camera, frames then dropped by "
                             "the newest-frame policy count too, so fewer may be processed)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and none of Ultralytics' model-loading messages; trackstream's own "
                             "one-line notes (which runtime and device run the model, decoder and encoder), "
                             "warnings and the summary still show")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    parser = sub.add_parser(name, help="track objects in video files or cameras",
                            description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """Config file (if any) with every given flag applied on top, validated.

    ``args`` comes from a parser that ``add_arguments`` made: every flag is read by its name, so a flag
    renamed in one place and not the other fails loudly here instead of being ignored."""
    return _config_and_found(args)[0]


def _config_and_found(args: argparse.Namespace,
                      looks: Optional["FirstLooks"] = None) -> tuple[PipelineConfig, frozenset[str]]:
    """``config_from_args``, and the source URLs that came from a folder or a glob (``expand_sources``, which
    opens each of them once in ``looks``)."""
    data: dict[str, Any] = read_config_file(args.config) if args.config else {}
    for flag, key, _ in VALUE_FLAGS:
        value = vars(args)[_dest(flag)]
        if value is not None:
            set_dotted(data, key, value)
    fill_secrets(data, args)  # --*-file flags and TRACKSTREAM_* variables (pipelines/credentials.py)
    if args.classes is not None:
        set_dotted(data, "detector.classes", args.classes)
    store = data.get("store")
    media = store.get("media") if isinstance(store, dict) else None   # --media is in it by now
    for key, value in (args.retain or {}).items():
        set_dotted(data, f"output.{key}", value)
        if media:   # the event store's snapshots and clips too: they were kept for ever beside rotating outputs
            set_dotted(data, f"store.{key}", value)
    if args.mqtt_discovery:
        set_dotted(data, "mqtt.discovery", True)
    if args.fresh_state:
        set_dotted(data, "state.fresh", True)
    if args.realtime:
        set_dotted(data, "source.realtime", True)
    if args.heatmap_half_life is not None:   # asking how it fades asks for a heatmap
        set_dotted(data, "heatmap.enabled", True)
    if args.heatmap_overwrite:
        set_dotted(data, "output.heatmap_overwrite", True)
    if args.overwrite:
        set_dotted(data, "output.overwrite", True)
    if args.heatmap_overlay:
        set_dotted(data, "overlay.heatmap", True)
    for flag, key in OVERLAY_FLAGS:
        if vars(args)[_dest(flag)]:
            set_dotted(data, f"overlay.{key}", False)
    urls, found, ids = expand_sources([*args.sources, *args.extra_sources], looks)
    if urls:
        unused = _per_source_keys(data.get("sources"))
        if unused:
            log.warning("the SOURCE given replaces the config's sources:, and with them what they set (%s): "
                        "use the config's sources alone, or top-level zones:/lines:/calibration:",
                        ", ".join(unused))
        data["sources"] = [{"url": u, "id": ids[u]} if u in ids else {"url": u} for u in urls]
    if args.source_id is not None and not args.source_id.strip():   # '' was ignored: the URL's id was used
        raise ConfigError("--source-id", "must not be empty (leave it out for an id made from the URL)")
    if args.source_id:
        sources = data.get("sources") or []
        if not isinstance(sources, list) or len(sources) != 1:
            raise ConfigError("--source-id", "needs exactly one source")
        first = sources[0] if isinstance(sources[0], dict) else {"url": sources[0]}
        sources[0] = {**first, "id": args.source_id}
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames", f"must be >= 1, got {args.max_frames}")
    config = build_config(data)
    if args.mqtt_discovery and not config.mqtt.url:
        raise ConfigError("--mqtt-discovery", "needs a broker: --mqtt URL (or mqtt.url in the config)")
    _check_partners(args, config)
    if config.overlay.heatmap and not (config.output.video or config.http.listen):
        log.warning("the heatmap overlay is drawn on the annotated video (--out) or the web view (--http); "
                    "this run has neither")
    return config, found


def _per_source_keys(sources: Any) -> list[str]:
    """The settings other than url and id that the config's ``sources:`` entries carry (sorted)."""
    keys = {k for s in (sources if isinstance(sources, list) else []) if isinstance(s, dict) for k in s}
    return sorted(keys - {"url", "id"})


def _check_partners(args: argparse.Namespace, config: PipelineConfig) -> None:
    """A flag that does something only beside another is refused without it (``ConfigError``, one line), rather
    than silently ignored: the user meant something by it."""
    out = config.output
    given = vars(args)
    needs = (
        (("--fresh-state",), bool(config.state.dir), "needs --state DIR (or state.dir in the config)"),
        (("--ray-address", "--cameras-per-actor", "--gpus-per-actor", "--file-workers"),   # `cluster add`: on Ray
         config.cluster.engine == "ray" or getattr(args, "command", "run") == "cluster", "needs --engine ray"),
        (("--out-rotate-seconds", "--out-rotate-bytes"), bool(out.video), "needs --out (the video it rotates)"),
        (("--jsonl-rotate-bytes", "--jsonl-rotate-seconds"), bool(out.jsonl), "needs --jsonl (the file it rotates)"),
        (("--heatmap-overwrite",), bool(out.heatmap), "needs --heatmap FILE (the file it may replace)"),
        (("--http-token", "--http-token-file"), bool(config.http.listen) or config.metrics.port is not None,
         "needs --http or --metrics-port (what the token protects)"),
        (("--redis-password-file",), bool(config.redis.url) or str(config.state.dir or "").startswith(REDIS_STATE),
         "needs --redis URL or --state redis://... (the server it logs in to)"),
        (("--mqtt-password-file",), bool(config.mqtt.url), "needs --mqtt URL (the broker it logs in to)"),
        (("--db-password-file",), is_postgres(config.store.db or ""), DB_PASSWORD_NEEDS),
        (("--retain",), bool(out.video or out.jsonl or config.store.media),
         "needs an output whose old files it deletes (--out, --jsonl or --media)"),
    )
    for flags, ok, why in needs:
        for flag in flags:
            if given.get(_dest(flag)) not in (None, False) and not ok:
                raise ConfigError(flag, why)


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")


def expand_inputs(urls: list[str]) -> list[str]:
    """A folder becomes the videos in it (sorted, by suffix; hidden files such as macOS's ``._clip.mp4`` left
    out, as a glob leaves them out), a glob the files it matches (sorted); URLs and plain files stay as they
    are. Either leaves out the annotated videos trackstream wrote (their header says so: an earlier run's
    ``--out`` into the archive's own folder), with one line naming them. An empty folder or a glob matching
    nothing is a ``SourceError``."""
    return expand_sources(urls)[0]


def expand_sources(urls: list[str], looks: Optional["FirstLooks"] = None
                   ) -> tuple[list[str], frozenset[str], dict[str, str]]:
    """``expand_inputs``; which of the URLs came only from a folder or a glob (none of them also named on its
    own): an unreadable one of those is skipped (``launch.skip_unreadable``), a named one stops the run; and the
    ids of the files a glob found that share their name with another file (``glob_ids``).
    ``looks``: each file a folder or glob gives is opened there, once, for every later look at start (its
    header here, whether it can be read, its frame count; in a small archive the source that reads it)."""
    import glob
    import os

    out: list[str] = []
    found_in: set[str] = set()
    named: set[str] = set()   # the files named on their own (real paths)
    roots: dict[str, Path] = {}   # a file a glob found -> the glob's own folder
    for url in urls:
        if _not_a_file(url):
            out.append(url)
        elif Path(url).expanduser().is_dir():
            folder = Path(url).expanduser()
            videos = sorted(str(p) for p in folder.iterdir()
                            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES)
            found = _not_ours(videos, url, looks)
            if videos and not found:
                raise SourceError(f"every video in {folder} is an annotated video trackstream wrote; name each as a "
                                  "SOURCE to track it anyway")
            if not found:
                below = "; its subfolders are not searched: give them, or a quoted glob such as " \
                        f"'{folder / '**' / '*.mp4'}'" if any(p.is_dir() for p in folder.iterdir()) else ""
                raise SourceError(f"no video files in {folder} (looked for {', '.join(VIDEO_SUFFIXES)}{below})")
            out.extend(found)
            found_in.update(found)
            _warn_subfolders(folder)
        elif any(ch in url for ch in "*?[") and not Path(url).exists():
            matched = sorted(p for p in glob.glob(str(Path(url).expanduser()), recursive=True) if Path(p).is_file())
            found = _not_ours(matched, url, looks)
            if matched and not found:
                raise SourceError(f"every file {url} matches is an annotated video trackstream wrote; name each "
                                  "as a SOURCE to track it anyway")
            if not found:
                raise SourceError(f"no file matches {url}{_literal_brackets(url)}")
            out.extend(found)
            found_in.update(found)
            root = Path(*_until_wildcard(Path(url).expanduser().parts))
            roots.update((f, root) for f in found if f not in roots)
        else:
            out.append(url)
            named.add(os.path.realpath(Path(url).expanduser()))
    kept = _once(out)
    only_found = frozenset(u for u in kept if u in found_in and os.path.realpath(u) not in named)
    return kept, only_found, glob_ids([u for u in kept if not _not_a_file(u)], {u: roots[u] for u in only_found
                                                                               if u in roots})


def _warn_subfolders(folder: Path) -> None:
    """One warning naming the subfolders of ``folder`` that hold videos (not trackstream's annotated ones): a folder
    stands for the videos directly in it, and a day-folder archive's clips were left out without a word."""
    from pipelines.sinks.video import segment_id

    names = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            videos = [p for p in sub.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES]
        except OSError:   # a subfolder it may not read: nothing to say about it
            continue
        if any(segment_id(p) is None for p in videos):
            names.append(sub.name)
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        log.warning("%s: the videos in its subfolder%s %s are not tracked (a folder stands for the videos directly "
                    "in it); to track them too, give a quoted glob: '%s'", folder, "s" if len(names) > 1 else "", shown,
                    folder / "**" / "*.mp4")


def _until_wildcard(parts: tuple[str, ...]) -> list[str]:
    """The leading parts of a glob without a wildcard: the folder it searches."""
    out: list[str] = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        out.append(part)
    return out


def _not_a_file(url: str) -> bool:
    """A camera or stream (a URL, a device, ``webcam:N``): never a folder, a glob or a file to expand."""
    return "://" in url or url.startswith("/dev/") or url.startswith("webcam:")


def _literal_brackets(pattern: str) -> str:
    """A hint when ``pattern`` holds a ``[`` that names a folder or file (``cam[1]/*.mp4``) and the pattern written
    with that name escaped matches files: a glob reads ``[1]`` as a set of characters, so a name with brackets
    must be written ``[[]``."""
    import glob

    if "[" not in pattern:
        return ""
    head = Path(pattern).expanduser()
    while head.parent != head and not head.exists():
        head = head.parent
    if "[" not in str(head) or head == Path(pattern).expanduser():
        return ""
    escaped = glob.escape(str(head)) + str(Path(pattern).expanduser())[len(str(head)):]
    if not any(Path(p).is_file() for p in glob.glob(escaped, recursive=True)):
        return ""   # written so, it would match nothing either
    return f" ({head} has a '[' in its name, which a glob reads as a set of characters: write {escaped})"


def _once(urls: list[str]) -> list[str]:
    """``urls`` without a second mention of one file (a folder and a file in it, two globs that overlap), with
    a warning: the two would be two sources of one id, and the run refused them as that."""
    import os

    seen: dict[str, str] = {}
    kept: list[str] = []
    for url in urls:
        local = not _not_a_file(url) and Path(url).is_file()
        key = os.path.realpath(Path(url).expanduser()) if local else url
        if local and key in seen:
            also = f" (also as {seen[key]})" if seen[key] != url else ""
            log.warning("%s is given more than once%s: processing it once", url, also)
            continue
        seen[key] = url
        kept.append(url)
    return kept


def _not_ours(found: list[str], pattern: str, looks: Optional["FirstLooks"] = None) -> list[str]:
    """``found`` without the annotated videos a trackstream run wrote (named in one INFO line): tracked again
    they would be new sources whose boxes are drawn on, and a rerun of a command writing ``--out`` into the
    folder it reads would refuse, its own earlier output taken for an input of the same name."""
    from pipelines.sinks.video import segment_id, segment_in

    def written(path: str) -> bool:
        if looks is None:
            return segment_id(path) is not None
        tags = looks.tags(path)   # None: unreadable, no header to say so (skip_unreadable says why)
        return tags is not None and segment_in(tags) is not None

    ours = [p for p in found if written(p)]
    for path in ours:
        if looks is not None:
            looks.drop(path)
    if ours:
        log.info("%s: leaving out %d annotated video(s) trackstream wrote: %s (name one as a SOURCE to track it "
                 "anyway)", pattern, len(ours), ", ".join(ours))
    return [p for p in found if p not in ours]


def execute(config: PipelineConfig, *, max_frames: Optional[int] = None, quiet: bool = False,
            config_files: Sequence[Optional[str]] = (), skipped: Sequence[str] = (),
            looks: Optional["FirstLooks"] = None, skippable: Collection[str] = ()) -> int:
    """Check and lock what the run writes (``claim_writes``; ``config_files`` must not be written), open sources
    (a file that ``looks`` opened already is taken from it), check outputs, load the model, process everything;
    print a summary. Returns exit code: ``SKIPPED_EXIT`` when all went well but ``skipped`` (the unreadable files
    of a folder or glob, left out) is not empty, or a file of ``skippable`` (the files a folder or glob found)
    could not be read when its turn came (removed since the start) and was left out too.

    The line naming the skipped files is printed however the run ends: after the summary, or before the error
    line of a run that failed (its exception goes on, and its exit code wins over ``SKIPPED_EXIT``), was
    interrupted while starting, or was stopped at once by a second signal."""
    left_out = list(skipped)   # and the files left out at their turn (the runner adds them)

    def report() -> None:
        files = sum(1 for s in config.sources if not s.is_live) - (len(left_out) - len(skipped))
        _print_skipped(left_out, files)

    try:
        if config.cluster.engine == "ray":
            from pipelines.cluster.engine import execute_ray

            if looks is not None:   # the workers open the files they process
                looks.close()
            code = execute_ray(config, max_frames=max_frames, quiet=quiet, config_files=config_files)
        else:
            with claim_writes(config, config_files):  # no output over an input or another output; one writer per file
                code = _execute_here(config, max_frames, quiet, looks, last_words=report,
                                     skippable=skippable, on_skip=left_out.append)
    finally:   # the summary (when the run got that far) is printed: the skipped files belong under it
        report()
    return SKIPPED_EXIT if left_out and code == 0 else code


def _print_skipped(skipped: Sequence[str], files: int) -> None:
    """``files``: the files the run processes (the skipped ones left out, cameras not counted)."""
    if skipped:
        print(f"skipped {len(skipped)} of {len(skipped) + files} files, which cannot be read (the reasons are "
              f"above): {', '.join(skipped)}", file=sys.stderr, flush=True)


def _execute_here(config: PipelineConfig, max_frames: Optional[int], quiet: bool,
                  looks: Optional["FirstLooks"] = None, last_words: Callable[[], None] = lambda: None,
                  skippable: Collection[str] = (), on_skip: Callable[[str], None] = lambda url: None) -> int:
    """``execute`` in this process; ``last_words``: what to print before a second signal ends the process at
    once (the summary is never reached then)."""
    from pipelines.detection.detector import Detector, detection_concurrency
    from pipelines.engine.runner import Runner

    store = open_store(config.state.dir) if config.state.dir else None
    model = preflight(config)
    warn_unsaved(config)

    def start(sources: Opened) -> Runner:
        # a saved state of another video or other outputs: no model load
        fingerprints = check_resumes(sources, config, store)
        detector = Detector(config.detector, model,
                            in_flight=detection_concurrency([s.schedule.waits_for_plans for s, _ in sources]))
        threads = f" x {detector.threads} thread{'s' * (detector.threads != 1)}" if detector.threads else ""
        log.info("model %s (%s) on %s: %d worker%s%s", Path(detector.model_name).name, detector.task,
                 detector.device, detector.workers, "s" * (detector.workers != 1), threads)
        return Runner(sources, detector, config, max_frames=max_frames, state=store, fingerprints=fingerprints,
                      skippable=skippable, on_skip=on_skip)

    runner = with_open_sources(config, start, looks=looks)
    from pipelines.engine.metrics import Monitor, runner_readings

    progress = Progress(enabled=None if not quiet else False)
    # Files shown with a progress bar need no periodic stats line; cameras and quiet runs get it.
    any_live = any(state.live for state in runner.sources())
    log_interval = config.metrics.log_interval if any_live or not progress.enabled else 0.0
    monitor = Monitor(lambda: runner_readings(runner), log_interval=log_interval, port=config.metrics.port,
                      token=config.http.token)
    web = None
    try:
        monitor.start()
        if config.http.enabled:  # the live view (--http): its server library is only loaded when asked for
            from pipelines.web.server import start_web_view

            web = start_web_view(config, runner, monitor)
    except BaseException:
        monitor.stop()
        runner.close_sources()
        raise
    started = time.monotonic()
    with StopSignals(runner.stop, at_once=lambda signum: _quit_now(signum, last_words)):
        try:
            stats = runner.run(on_progress=progress.update)
        finally:
            progress.finish()
            if web is not None:
                web.stop()
            monitor.stop()
    counts = {state.id: state.counts for state in runner.sources()}
    losses = runner.losses()
    for line in summary_lines(stats, runner.outputs, time.monotonic() - started, counts, losses):
        print(line, file=sys.stderr)
    if losses:
        more = f" (and {len(losses) - 1} more, listed above)" if len(losses) > 1 else ""
        raise DataLossError(f"{losses[0]}{more}")
    return 0  # every source ended, or SIGINT/SIGTERM stopped the run and every output was flushed



def _quit_now(signum: int, last_words: Callable[[], None]) -> None:
    """A second signal: ``last_words``, then end the process at once (``128 + signum``), outputs as they are."""
    try:
        last_words()
    finally:
        os._exit(128 + signum)


def main(args: argparse.Namespace) -> int:
    from pipelines.sources.looks import FirstLooks

    with FirstLooks() as looks:   # each file of a folder or glob opened once at start (a few kept for their source)
        config, found = _config_and_found(args, looks)
        config, skipped = skip_unreadable(config, found, looks)   # one warning line each; the rest goes on
        if args.quiet:  # no progress bar, and none of Ultralytics' model-loading chatter
            from pipelines.detection.ultralytics_env import hush

            hush()
        return execute(config, max_frames=args.max_frames, quiet=args.quiet, config_files=[args.config],
                       skipped=skipped, looks=looks, skippable=found)


__all__ = ["add_arguments", "add_parser", "config_from_args", "execute", "expand_inputs", "expand_sources", "main"]
