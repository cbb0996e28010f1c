#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run it.
#   - Debian packages: python3-venv (Debian's python3 lacks the venv module that makes .venv below), redis-server
#     and mosquitto (tests start their own on a free port) and the GStreamer RTSP server
#     that live-camera tests run against (driven by the system /usr/bin/python3); headless chromium and
#     chromedriver for the web view's browser tests (tests/web); ffmpeg, the live HLS / MPEG-TS producer of
#     tests/live/test_hls.py; postgresql, whose server binaries tests/store start as a private server on a free
#     port (the event history's PostgreSQL tests).
#   - A virtual environment in .venv with trackstream and its test extras (Ray among them: tests/cluster runs a real
#     multi-node Ray cluster on loopback addresses).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv
  redis-server
  mosquitto
  mosquitto-clients
  openssl
  python3-gi
  gir1.2-gstreamer-1.0
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad
  gstreamer1.0-libav
  ffmpeg
  chromium
  chromium-driver
  postgresql
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing trackstream[test] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# Lint and types first: a finding fails the run (CI enforces them). Strict typing covers the pure tracker and
# the pipeline's core (the seam types, settings, per-camera processing, engine, sink registry) and what is built
# on it (the web view, the Ray engine, the subcommands).
STRICT=(tracker pipelines/frames.py pipelines/settings.py pipelines/config.py pipelines/detection/__init__.py
        pipelines/detection/letterbox.py pipelines/detection/runtime.py pipelines/detection/runtime_speed.py
        pipelines/detection/model_cache.py
        pipelines/detection/model_identity.py pipelines/detection/native.py pipelines/cpu.py
        pipelines/detection/ultralytics_env.py pipelines/gpu.py pipelines/sources/replay.py pipelines/sources/looks.py
        pipelines/sources/h264bits.py pipelines/sources/unchanged.py
        pipelines/processing pipelines/engine pipelines/sinks/base.py pipelines/sinks/__init__.py pipelines/web
        pipelines/cluster pipelines/commands pipelines/store pipelines/sinks/store.py pipelines/secrets.py
        pipelines/credentials.py pipelines/listen.py pipelines/retention.py)
echo "== ruff"
.venv/bin/python -m ruff check pipelines tracker tests benchmarks
echo "== mypy"
.venv/bin/python -m mypy pipelines tracker
.venv/bin/python -m mypy --strict "${STRICT[@]}"

export YOLO_AUTOINSTALL=false YOLO_OFFLINE=true
# Test files run on TRACKSTREAM_TEST_WORKERS processes (pytest-xdist), each file whole on one of them, so the
# servers a module starts and its fixtures stay shared within it: most tests wait on servers, cameras and
# subprocesses, so two workers on 2 cores halve the suite's time (26 -> 12 minutes). 0 runs them in this process.
echo "== running tests"
exec .venv/bin/python -m pytest -n "${TRACKSTREAM_TEST_WORKERS:-2}" --dist loadfile "$@"
