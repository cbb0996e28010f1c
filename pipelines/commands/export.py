"""`trackstream export`: build the model cache entry a run would build on first use, and say where it is.

For a fleet or a Docker image: run it once at build time (same libraries, same settings as the runs) and
every later ``trackstream run`` starts from the cache instead of exporting (docs/cpu.md). Takes the run's
config file and model flags; prints the path of the model a CPU run will load. With ``auto`` it exports to
both runtimes and times them here, as a run would; a run on another CPU model or core count times them again
(from the cached exports).
"""

from __future__ import annotations

import argparse
import sys

from pipelines.config import load_config
from pipelines.detection.runtime import resolve_runtime
from pipelines.engine.launch import resolve_model


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    parser = sub.add_parser(name, help="export a .pt model for the CPU runtime into the model cache (docs/cpu.md)",
                            description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", metavar="FILE", help="YAML config whose detector: section is used")
    parser.add_argument("--model", metavar="M.pt", help="weights (default: the config's, else the bundled demo model)")
    parser.add_argument("--imgsz", type=int, metavar="PX", help="detector input size (default: the config's, 640)")
    parser.add_argument("--runtime", choices=["auto", "onnx", "openvino"],
                        help="runtime to export for (default: the config's, auto = both, timed here as a CPU run "
                        "does)")
    parser.add_argument("--cache-dir", metavar="DIR", help="model cache folder (default: detector.cache_dir, "
                        "else $TRACKSTREAM_MODEL_CACHE, else ~/.cache/trackstream/models)")


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config, {"detector.model": args.model, "detector.imgsz": args.imgsz,
                                       "detector.runtime": args.runtime, "detector.cache_dir": args.cache_dir})
    from pipelines.detection.detector import copy_threads   # here: the CLI imports every command's module to start

    det = config.detector
    model = resolve_model(config)   # the one a run loads: detector.model, else the bundled demo model
    # auto times both runtimes on the threads a run's model copy gets (a run with other copies measures again)
    threads = copy_threads(det.workers, "cpu", model)
    choice = resolve_runtime(det.runtime, model, "cpu", det.imgsz, det.cache_dir, threads)
    if choice.cache_entry is None:
        print(f"trackstream export: nothing to export: {model} runs as given ({choice.runtime})", file=sys.stderr)
    print(choice.model)
    return 0
