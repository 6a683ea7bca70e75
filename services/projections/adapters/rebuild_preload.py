"""Imported first by the parallel rebuild's fork server (`parallel.py`): the rebuilding
program's main script is marked as this server's main module, without running it.

A forked worker runs `multiprocessing`'s preparation, which imports the parent's main
script as `__mp_main__` unless the server's `__main__` already has its path as
`__file__`. The workers need nothing from it (their target is `parallel._worker`, their
arguments a URL, model names and a pipe), and importing it was the dearest part of the
server's start-up: the `dealreg` console script imports the whole CLI (about 0.4
CPU-second), the bench's script FastAPI and the load generator (about 0.5), paid in every
rebuild's measured time (session 29). Python 3.11 never hands the server the script's
path (it looks for a `main_path` key that the preparation data calls
`init_main_from_path`), so it comes in `DEALREG_REBUILD_MAIN_PATH`, set while the server
starts. A main module given by name (`python -m ...`) is imported by the workers as
before.
"""

from __future__ import annotations

import os
import sys

MAIN_PATH = "DEALREG_REBUILD_MAIN_PATH"

_path = os.environ.get(MAIN_PATH)
_main = sys.modules.get("__main__")
if _path and _main is not None and getattr(_main, "__file__", None) != _path:
    # `spawn._fixup_main_from_path` then finds it "already imported" in every worker.
    _main.__file__ = _path
