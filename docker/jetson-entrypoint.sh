#!/bin/sh
# Build the TensorRT engine on this device the first time (engines are not portable), then run the command.
set -e
if [ ! -f "$NANOLINK_ENGINE" ]; then
    echo "nanolink: building $NANOLINK_ENGINE for $NANOLINK_ENGINE_SHAPE on this device (first start only)"
    nanolink-build-engine --model cae --out "$NANOLINK_ENGINE" --shape "$NANOLINK_ENGINE_SHAPE" --fp16 --workspace 512
fi
exec "$@"
