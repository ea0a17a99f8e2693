#!/usr/bin/env bash
# Build the one-folder desktop bundle: dist/fathom-studio/ holds `fathom-studio` (the app),
# `fathom` (the command line), the .desktop entry, the icon, and _internal/ (Python + libraries).
# Usage: bash packaging/build.sh        (about 5 minutes and 1.2 GB with torch on CPU)
# The bundle is made from the current Python environment: install fathom-studio with the extras
# you want in it first (`pip install -e ".[gui,gen,3d]"`); Ray is left out of the bundle.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

python -c "import PyInstaller" 2>/dev/null || python -m pip install -q "pyinstaller>=6.10"
[ -f assets/icons/fathom.png ] || python packaging/make_icon.py

start=$(date +%s)
python -m PyInstaller --noconfirm --log-level WARN --distpath dist \
    --workpath build/pyinstaller packaging/fathom.spec

BUNDLE=dist/fathom-studio
if [ ! -e "$BUNDLE/fathom.exe" ]; then
    ln -sf fathom-studio "$BUNDLE/fathom"  # the same binary; the name decides app or CLI
fi
if [ "$(uname -s)" = "Linux" ]; then
    cp assets/icons/fathom.png "$BUNDLE/fathom-studio.png"
    cp packaging/linux/fathom-studio.desktop "$BUNDLE/fathom-studio.desktop.in"
    install -m755 packaging/linux/install-desktop-entry.sh "$BUNDLE/install-desktop-entry.sh"
fi
secs=$(( $(date +%s) - start ))
size=$(du -sh "$BUNDLE" | cut -f1)
echo "built $BUNDLE ($size) in ${secs}s"
