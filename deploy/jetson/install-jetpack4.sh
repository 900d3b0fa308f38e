#!/bin/bash
# nanolink edge on a Jetson Nano with JetPack 4.6.x (L4T R32.7, Ubuntu 18.04, Python 3.6.9, TensorRT 8.2).
#
#   ./deploy/jetson/install-jetpack4.sh [--no-swap] [--no-engine] [--shape 1x3x720x1280]
#
# Run from the repository root as your normal user (it calls sudo where needed). It:
#   1. keeps JetPack's OpenCV (built with GStreamer, needed for CSI cameras): never pip-installs OpenCV;
#   2. installs nanolink for the system python3 with --user, dependencies in Python-3.6 ranges, and pycuda;
#   3. sets OPENBLAS_CORETYPE=ARMV8 (numpy 1.19 dies with "Illegal instruction" on the Nano without it);
#   4. adds a 4 GB swap file if there is less swap (TensorRT engine builds run out of memory on 4 GB);
#   5. builds the TensorRT engine ~/nanolink/cae.trt on this Nano from the bundled ONNX encoder.
set -euo pipefail

SHAPE=1x3x720x1280
SWAP=1
ENGINE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-swap) SWAP=0 ;;
        --no-engine) ENGINE=0 ;;
        --shape) SHAPE="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install-jetpack4.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "install-jetpack4.sh: error: $*" >&2; exit 1; }

[ -f setup.cfg ] && grep -q "name = nanolink" setup.cfg || die "run this from the nanolink repository root"
if [ -f /etc/nv_tegra_release ] && ! grep -q "R32" /etc/nv_tegra_release; then
    die "this is not JetPack 4 (L4T R32): $(head -1 /etc/nv_tegra_release); use deploy/jetson/install-jetpack6.sh"
fi
python3 -c 'import sys; assert sys.version_info[:2] == (3, 6)' \
    || die "JetPack 4.6's python3 is 3.6; found $(python3 --version 2>&1). TensorRT's bindings exist only for it"

echo "== system packages (JetPack's OpenCV stays)"
sudo apt-get update
sudo apt-get install -y python3-pip python3-dev libffi-dev
python3 -c 'import cv2' 2>/dev/null || sudo apt-get install -y python3-opencv
python3 - <<'PY' || echo "warning: this OpenCV has no GStreamer: csi:// cameras will not open (USB /dev/video0 will)"
import cv2, re, sys
sys.exit(0 if re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()) else 1)
PY
python3 -c 'import tensorrt' 2>/dev/null || echo "warning: python3 cannot import tensorrt: install JetPack's python3-libnvinfer"

echo "== OPENBLAS_CORETYPE=ARMV8"
grep -q OPENBLAS_CORETYPE ~/.bashrc || echo 'export OPENBLAS_CORETYPE=ARMV8' >> ~/.bashrc
export OPENBLAS_CORETYPE=ARMV8
export PATH="$HOME/.local/bin:/usr/local/cuda/bin:$PATH"
grep -q '.local/bin' ~/.bashrc || echo 'export PATH="$HOME/.local/bin:/usr/local/cuda/bin:$PATH"' >> ~/.bashrc

echo "== nanolink (python3 --user)"
python3 -m pip install --user -U "pip==21.3.1"
python3 -m pip install --user --no-deps .
python3 -m pip install --user "numpy>=1.19,<=1.19.5" "pyzmq>=22,<=25.1.2" "msgpack>=1.0,<=1.0.5" dataclasses \
    "pycuda>=2020.1,<2022"
python3 -c 'import nanolink.edge.cli, pycuda.driver' || die "nanolink or pycuda does not import"

if [ "$SWAP" = 1 ]; then
    swap_mb=$(free -m | awk '/^Swap:/ {print $2}')
    if [ "${swap_mb:-0}" -lt 4000 ] && [ ! -f /var/swapfile ]; then
        echo "== 4 GB swap file /var/swapfile (engine builds)"
        sudo fallocate -l 4G /var/swapfile
        sudo chmod 600 /var/swapfile
        sudo mkswap /var/swapfile
        sudo swapon /var/swapfile
        grep -q /var/swapfile /etc/fstab || echo '/var/swapfile swap swap defaults 0 0' | sudo tee -a /etc/fstab
    fi
fi

if [ "$ENGINE" = 1 ]; then
    echo "== TensorRT engine for $SHAPE (several minutes on a Nano)"
    mkdir -p ~/nanolink
    nanolink-build-engine --model cae --out ~/nanolink/cae.trt --shape "$SHAPE" --fp16 --workspace 512
fi

cat <<MSG

Done. For honest timings run the Nano at full clocks: sudo nvpmodel -m 0 && sudo jetson_clocks
Stream (host PC at PC_ADDRESS runs: host-receiver --show):
  edge-sender --camera csi://0 --engine ~/nanolink/cae.trt --connect tcp://PC_ADDRESS:5555
As a service that restarts itself: sudo ./deploy/jetson/install-service.sh PC_ADDRESS
MSG
