"""Frozen entry point of the command line (the `mspbill-cli` executable of the bundle).

`mspbill.cli:main`, the same function the pip-installed `mspbill` console script
runs: commands print to stdout; with no command it opens the desktop app.
"""

from mspbill.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
