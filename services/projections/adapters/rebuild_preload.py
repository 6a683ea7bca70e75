"""Imported first by the parallel rebuild's fork server (`parallel.py`): the rebuilding
program's main module, once, for every worker the server forks.

A forked worker runs `multiprocessing`'s preparation, which imports the parent's main
script (the `dealreg` console script imports the whole CLI: about 0.4 CPU-second) unless
it is already the server's `__main__`. The server would import it itself when `__main__`
is preloaded, but Python 3.11 never hands it the script's path (it looks for a
`main_path` key that the preparation data calls `init_main_from_path`), so the path comes
in `DEALREG_REBUILD_MAIN_PATH`, set while the server starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from multiprocessing import spawn

MAIN_PATH = "DEALREG_REBUILD_MAIN_PATH"

_path = os.environ.get(MAIN_PATH)
if _path and getattr(sys.modules.get("__main__"), "__file__", None) != _path:
    # A script that fails here: each worker then imports it itself, as spawned ones did.
    with contextlib.suppress(Exception):
        spawn.import_main_path(_path)
