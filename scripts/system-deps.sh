#!/usr/bin/env bash
# System libraries the tests need: Open3D (libusb, GL, EGL, gomp), Qt offscreen (xkbcommon,
# fontconfig, dbus), Qt xcb under Xvfb for the OpenGL views (xvfb, xauth, Mesa, xcb-*), pyrender
# on EGL (libegl-mesa0) and ffmpeg (benchmark baselines). Installs what is missing when it can
# (root and apt); otherwise stops with the one command to run, so a missing library is never
# reported as a failing test.
set -euo pipefail

PACKAGES=(
    libgl1 libegl1 libgomp1 libusb-1.0-0
    libxkbcommon0 libfontconfig1 libdbus-1-3
    xvfb xauth libgl1-mesa-dri libxcb-cursor0 libxkbcommon-x11-0 libegl-mesa0
    libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
    libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 libxcb-shm0 libxcb-sync1
    libxcb-render0
    ffmpeg
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "== system packages: not a Debian/Ubuntu system; install the equivalents of:"
    echo "   ${PACKAGES[*]}"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "== system packages: all present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
fi

echo "The tests need these system packages, which are not installed: ${missing[*]}" >&2
echo "Install them with:" >&2
echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
exit 1
