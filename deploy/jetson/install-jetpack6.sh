#!/bin/bash
# nanolink edge on a Jetson Orin Nano with JetPack 6 (L4T R36, Ubuntu 22.04, Python 3.10, TensorRT 8.6 / 10.3).
#
#   ./deploy/jetson/install-jetpack6.sh [--no-engine] [--shape 1x3x720x1280]
#
# Run from the repository root as your normal user. It makes a venv at ~/nanolink/venv that sees the system
# site-packages (JetPack's tensorrt bindings and OpenCV with GStreamer), installs nanolink without
# pip's OpenCV, adds pycuda, and builds the TensorRT engine ~/nanolink/cae.trt on this device.
set -euo pipefail

SHAPE=1x3x720x1280
ENGINE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-engine) ENGINE=0 ;;
        --shape) SHAPE="$2"; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "install-jetpack6.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "install-jetpack6.sh: error: $*" >&2; exit 1; }

[ -f setup.cfg ] && grep -q "name = nanolink" setup.cfg || die "run this from the nanolink repository root"
if [ -f /etc/nv_tegra_release ] && grep -q "R32" /etc/nv_tegra_release; then
    die "this is JetPack 4 (L4T R32): use deploy/jetson/install-jetpack4.sh"
fi

echo "== system packages"
sudo apt-get update
sudo apt-get install -y python3-venv python3-dev python3-opencv python3-libnvinfer
python3 -c 'import tensorrt; print("TensorRT", tensorrt.__version__)' || die "python3 cannot import tensorrt"

echo "== venv ~/nanolink/venv (system site-packages: tensorrt, OpenCV)"
mkdir -p ~/nanolink
python3 -m venv --system-site-packages ~/nanolink/venv
VENV=~/nanolink/venv/bin
"$VENV/pip" install -U pip
"$VENV/pip" install --no-deps .
# numpy < 2: JetPack 6's TensorRT and OpenCV bindings are built against numpy 1.x
"$VENV/pip" install "numpy>=1.21,<2" "pyzmq>=22" "msgpack>=1.0" onnxruntime
PATH=/usr/local/cuda/bin:$PATH "$VENV/pip" install pycuda
"$VENV/python" -c 'import nanolink.edge.cli, pycuda.driver, cv2' || die "nanolink, pycuda or cv2 does not import"

if [ "$ENGINE" = 1 ]; then
    echo "== TensorRT engine for $SHAPE"
    "$VENV/nanolink-build-engine" --model cae --out ~/nanolink/cae.trt --shape "$SHAPE" --fp16
fi

cat <<MSG

Done. For honest timings: sudo nvpmodel -m 0 && sudo jetson_clocks
  ~/nanolink/venv/bin/edge-sender --camera csi://0 --engine ~/nanolink/cae.trt --connect tcp://PC_ADDRESS:5555
As a service: sudo ./deploy/jetson/install-service.sh PC_ADDRESS --bin ~/nanolink/venv/bin
MSG
