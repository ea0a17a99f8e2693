#!/usr/bin/env bash
# Register this bundle with the desktop (menu entry + icon) and put `fathom` on the PATH, for
# the current user only. Run it from the unpacked bundle folder; run it again after moving it.
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"

install -Dm644 "$BUNDLE/fathom-studio.png" "$DATA/icons/hicolor/256x256/apps/fathom-studio.png"
mkdir -p "$DATA/applications" "$HOME/.local/bin"
sed "s|@BUNDLE@|$BUNDLE|g" "$BUNDLE/fathom-studio.desktop.in" \
    > "$DATA/applications/fathom-studio.desktop"
ln -sf "$BUNDLE/fathom" "$HOME/.local/bin/fathom"
ln -sf "$BUNDLE/fathom-studio" "$HOME/.local/bin/fathom-studio"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
echo "Fathom Studio is in the applications menu; \`fathom\` and \`fathom-studio\` are in ~/.local/bin."
