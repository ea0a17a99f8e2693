"""Fathom Studio's desktop GUI (PySide6): node editor, inspector, previews, viewers.

Nothing under ``engine/`` or ``nodes/`` imports this package; it drives the engine only through
the public API the command line uses, so a graph made here renders identically with
``fathom render``. Its run-session model (``app.session``) needs no Qt, so the package itself
imports without PySide6; the Qt modules then fail on their own import with Qt's error.
"""

try:
    import PySide6  # noqa: F401 - probing that Qt is there before guarding it
except ImportError:  # headless: only the Qt-free modules are usable
    pass
else:
    # Before any Qt module of this package runs a Qt call (see qtfix for why).
    from fathom.app.qtfix import install as _install_qt_fix

    _install_qt_fix()
