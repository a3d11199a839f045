"""Atomic file writes: a reader (or a crash, or a full disk) never leaves a 0-byte or
half-written output.

Every output file of a run (``summary.json``, ``metrics.json``, ``config.json``, the CSV
files, the charts, the snapshots) is written through :func:`atomic_open`: into a
temporary file in the same folder, flushed and fsynced, then renamed over the target with
``os.replace`` (atomic on POSIX and Windows within one filesystem), and the folder is
fsynced so the rename itself survives a crash. If anything fails before the rename, the
temporary file is removed and the target is left as it was: the old file, or none.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import IO, Iterator


def _temp_name(path: Path) -> Path:
    # Hidden, and unique per process and thread, so concurrent writers never share one.
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing (``mode`` ``"w"`` or ``"wb"``;
    ``kwargs`` go to :func:`open`, e.g. ``newline=""``); when the block ends without an
    error, fsync it and rename it over ``path``. On an error (disk full, a failing
    serializer, Ctrl-C) the temporary file is removed, ``path`` is untouched and the error
    propagates (an OSError naming ``path``). The folder must exist."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None or str(e.filename) == str(tmp):  # name the file the caller asked for
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """``fig.savefig`` into ``path`` atomically (the format from the suffix; ``kwargs``
    go to ``savefig``, e.g. ``dpi``)."""
    path = Path(path)
    fmt = kwargs.pop("format", None) or path.suffix.lstrip(".") or None
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, **kwargs)


__all__ = ["atomic_open", "fsync_dir", "save_figure", "write_bytes", "write_text"]
