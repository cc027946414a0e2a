"""Writing outputs so that nothing is ever half-written or overwritten by accident.

A file is written to a temporary name beside its target, flushed and fsynced, optionally
re-read and verified, and only then renamed over the target (atomic on POSIX). An existing
target is replaced only with force; an input file (`protect`) never.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

from optcli.errors import InputError


class StagedFile:
    """`write(f)` into a temporary file beside `path`, then `verify(tmp_path)`; the file is
    renamed to `path` only on commit().

    Used as a context manager: leaving the block without commit() (an error, Ctrl-C) removes
    the temporary file, so nothing is ever left at the target path.
    """

    def __init__(self, path: Path, write: Callable[[IO[bytes]], None], *, force: bool = False,
                 protect: tuple[Path, ...] = (), verify: Callable[[Path], None] | None = None):
        check_output_path(path, force=force, protect=protect)
        self.path, self.force, self.protect = path, force, protect
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self.tmp = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if verify is not None:
                verify(self.tmp)
            os.chmod(self.tmp, 0o666 & ~_umask())   # mkstemp makes 0600; use the umask
        except BaseException:
            self.discard()
            raise
        self.size = self.tmp.stat().st_size

    def commit(self) -> int:
        check_output_path(self.path, force=self.force, protect=self.protect)
        os.replace(self.tmp, self.path)
        return self.size

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "StagedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_bytes_atomic(path: Path, data: bytes, *, force: bool = False,
                       protect: tuple[Path, ...] = ()) -> int:
    """Write `data` atomically (exports); returns bytes on disk."""
    with StagedFile(path, lambda f: f.write(data), force=force, protect=protect) as staged:
        return staged.commit()


def check_output_path(path: Path, *, force: bool, protect: tuple[Path, ...] = ()) -> None:
    if not path.parent.is_dir():
        raise InputError(f"{path}: output folder does not exist")
    for p in protect:
        if path.exists() and p.exists() and path.resolve() == p.resolve():
            raise InputError(f"{path}: refusing to overwrite the input file")
    if path.exists() and not force:
        raise InputError(f"{path}: output exists; pass --force to replace it")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
