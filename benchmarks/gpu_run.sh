#!/usr/bin/env bash
# One command for a GPU machine (issue #16): install the wheels that travel in .whl/, record the machine, run the
# CUDA tests, then benchmarks/gpu_streams.py; everything goes to $OUT (default /tmp/trackstream-gpu-out). Budget ~8 minutes.
#
#   bash benchmarks/gpu_run.sh            # from the repository root; OUT=/some/dir to choose the folder
#
# Environment: WHEELS (default .whl), SECONDS_PER_RUN (default 15), STREAMS (default "1 4 8 16 32"),
# PYTHON (default python3). The wheels the device image lacks: `bash benchmarks/gpu_wheels.sh` on a machine
# with a registry; they are installed into /tmp/site (put first on PYTHONPATH), the image's torch is used.
# As a device call: run(command="OUT=$OUT bash benchmarks/gpu_run.sh", carry=[".whl"], timeout_s=600).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/trackstream-gpu-out}"
WHEELS="${WHEELS:-.whl}"
PY="${PYTHON:-python3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-15}"
STREAMS="${STREAMS:-1 4 8 16 32}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" YOLO_OFFLINE=true YOLO_AUTOINSTALL=false PYTHONUNBUFFERED=1

{
  echo "== install"
  if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$WHEELS"/*.whl 2>&1 | tail -5
    echo "installed into /tmp/site: $(ls "$WHEELS" | tr '\n' ' ')"
  else
    echo "no wheels in $WHEELS: using what is installed"
  fi
} >"$OUT/install.txt" 2>&1
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site:$PYTHONPATH"

{
  echo "== machine"; date -u; nproc; nvidia-smi || echo "no nvidia-smi"
  "$PY" - <<'PY'
import av, sys
print("python", sys.version.split()[0], "av", av.__version__)
print("cuvid/nvenc in FFmpeg:", sorted(c for c in av.codecs_available if c.endswith(("_cuvid", "_nvenc"))))
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as exc:
    print("torch unavailable:", exc)
try:
    import ultralytics
    print("ultralytics", ultralytics.__version__)
except Exception as exc:
    print("ultralytics unavailable:", exc)
PY
} >"$OUT/env.txt" 2>&1

echo "== CUDA tests" | tee "$OUT/tests.txt"
timeout 150 "$PY" -m pytest tests/test_gpu_selection.py tests/test_letterbox.py benchmarks/gpu_checks -q -rs -p no:cacheprovider >>"$OUT/tests.txt" 2>&1
echo "pytest exit $?" >>"$OUT/tests.txt"

echo "== benchmark" | tee "$OUT/gpu_streams.txt"
# shellcheck disable=SC2086  # STREAMS is a list of numbers
timeout 420 "$PY" benchmarks/gpu_streams.py --streams $STREAMS --seconds "$SECONDS_PER_RUN" \
  --clip-dir "$OUT/clip" --json "$OUT/gpu_streams.json" >>"$OUT/gpu_streams.txt" 2>&1
echo "benchmark exit $?" >>"$OUT/gpu_streams.txt"
rm -rf "$OUT/clip"  # the generated 1080p clip is not worth bringing back
tail -n 30 "$OUT/tests.txt" "$OUT/gpu_streams.txt"
