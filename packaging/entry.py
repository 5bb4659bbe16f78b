"""PyInstaller's entry script: the frozen app starts here (`--engine`, `--convert` and `--self-test` included)."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
