"""Frozen entry point of the desktop app (the `mspbill` executable of the bundle).

PyInstaller needs a script, not an entry point; this is `ui.app:main`, the same
function the pip-installed `mspbill-gui` runs.
"""

from ui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
