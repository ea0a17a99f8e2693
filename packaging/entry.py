"""Entry point of the desktop bundle: `fathom-studio` opens the app, `fathom` is the command line.

One executable serves both (on Linux and macOS `fathom` is a symlink to it; on Windows the spec
builds a second, console executable from the same analysis): the name it was started by decides.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def main() -> int:
    multiprocessing.freeze_support()  # batch renders start worker processes from this binary
    if Path(sys.argv[0]).stem.lower() == "fathom":
        from fathom.engine.cli import main as cli_main

        return cli_main(sys.argv[1:])
    from fathom.app.main import main as app_main

    return app_main() or 0


if __name__ == "__main__":
    sys.exit(main())
