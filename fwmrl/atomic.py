"""Files that are replaced whole or not at all.

:func:`atomic_file` writes to a temporary file in the target's folder, flushes and fsyncs it, then
``os.replace``-s it over the target: a crash, a kill or a full disk leaves the old file or the new
one, never a partial one, and the temporary file is removed. A symlink at the target is replaced by
the file; its target is left alone.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file (``mode`` ``"w"`` or ``"wb"``) that replaces ``path`` when the block
    ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make run files private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` by a text file holding ``text``, atomically."""
    with atomic_file(path) as f:
        f.write(text)
