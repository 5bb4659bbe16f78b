"""PyInstaller's entry script: the frozen app starts here (`--engine`, `--convert` and `--self-test` included)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen app is its own interpreter: multiprocessing starts its children (spawn, and its
    # resource tracker; torch and transformers use them in the converter) by running this
    # executable again with arguments of its own. freeze_support() runs such a child and exits
    # here, where app.main would take the arguments for its own and open a second window.
    multiprocessing.freeze_support()
    from app.main import main

    sys.exit(main())
