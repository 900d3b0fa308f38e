#!/bin/bash
# Install the nanolink-edge systemd unit: edge-sender starts at boot and restarts when it exits.
#
#   sudo ./deploy/jetson/install-service.sh HOST_ADDRESS [--bin DIR] [--user NAME] [--stream-id NAME]
#
# --bin: where edge-sender is (default: ~USER/.local/bin, as install-jetpack4.sh installs it;
#        ~/nanolink/venv/bin after install-jetpack6.sh). Edit /etc/default/nanolink-edge to change the
#        camera, engine or host later, then: sudo systemctl restart nanolink-edge
set -euo pipefail
die() { echo "install-service.sh: error: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "give the host PC's address: sudo $0 192.168.1.20"
HOST="$1"; shift
USER_NAME="${SUDO_USER:-$(id -un)}"
BIN=""
STREAM="$(hostname)"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN="$2"; shift ;;
        --user) USER_NAME="$2"; shift ;;
        --stream-id) STREAM="$2"; shift ;;
        *) die "unknown option $1" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "run with sudo (it writes /etc/systemd/system)"
HOME_DIR="$(getent passwd "$USER_NAME" | cut -d: -f6)"
[ -n "$HOME_DIR" ] || die "no such user: $USER_NAME"
BIN="${BIN:-$HOME_DIR/.local/bin}"
BIN="${BIN/#\~/$HOME_DIR}"
[ -x "$BIN/edge-sender" ] || die "no edge-sender in $BIN: run install-jetpack4.sh (or pass --bin)"
HERE="$(cd "$(dirname "$0")" && pwd)"

sed -e "s#@USER@#$USER_NAME#g" -e "s#@BIN@#$BIN#g" "$HERE/nanolink-edge.service" > /etc/systemd/system/nanolink-edge.service
if [ ! -f /etc/default/nanolink-edge ]; then
    sed -e "s#/home/@USER@#$HOME_DIR#g" -e "s#@HOST@#$HOST#g" -e "s#@STREAM@#$STREAM#g" \
        "$HERE/nanolink-edge.env" > /etc/default/nanolink-edge
else
    echo "keeping the existing /etc/default/nanolink-edge"
fi
systemctl daemon-reload
systemctl enable --now nanolink-edge
echo "nanolink-edge is running: journalctl -u nanolink-edge -f"
