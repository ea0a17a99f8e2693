"""Fathom Studio's desktop GUI (PySide6): node editor, inspector, previews, viewers.

Nothing under ``engine/`` or ``nodes/`` imports this package; it drives the engine only through
the public API the command line uses, so a graph made here renders identically with
``fathom render``.
"""

from fathom.app.qtfix import install as _install_qt_fix

_install_qt_fix()
