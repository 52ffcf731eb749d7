"""Deliberately broken builds of the write path's filesystem steps.

``SOS_MUTANT=<name>`` makes the reliability conftest put one of these in
``sos.storage.atomic.ops`` for the whole run; test_mutants.py runs the crash-point
and power-loss suites that way, in a subprocess, and checks that they go red.
Each is a layer over ``below``, where the suites install their
:class:`recording.Recording` (see :func:`recording.install`), so a recording
sees exactly the steps the broken build takes, as it would see a broken
``sos/storage/``.
"""

from __future__ import annotations

import os

from sos.storage import atomic as _atomic
from sos.storage.fileops import FileOps, is_temp_name


class Layer(FileOps):
    """Passes every step to ``below``; the mutants change one thing each."""

    def __init__(self) -> None:
        self.below = FileOps()

    def open_temp(self, directory: str) -> tuple[int, str]:
        return self.below.open_temp(directory)

    def write(self, fd: int, data: bytes) -> None:
        self.below.write(fd, data)

    def fsync(self, fd: int) -> None:
        self.below.fsync(fd)

    def chmod(self, fd: int, mode: int) -> None:
        self.below.chmod(fd, mode)

    def close(self, fd: int) -> None:
        self.below.close(fd)

    def rename(self, src: str, dst: str) -> None:
        self.below.rename(src, dst)

    def unlink(self, path: str) -> None:
        self.below.unlink(path)

    def mkdir(self, path: str) -> None:
        self.below.mkdir(path)

    def fsync_dir(self, path: str) -> None:
        self.below.fsync_dir(path)


class NoFileFsync(Layer):
    """Never fsyncs a file: its data may not be on disk when its new name is."""

    def fsync(self, fd: int) -> None:
        pass


class NoDirFsync(Layer):
    """Never fsyncs a directory: a rename, create or unlink may not survive."""

    def fsync_dir(self, path: str) -> None:
        pass


class InPlace(Layer):
    """Replaces a file by truncating it and writing the new bytes into it (as
    dictdatabase does) instead of renaming the temp file over it."""

    def rename(self, src: str, dst: str) -> None:
        with open(src, "rb") as f:
            data = f.read()
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            self.below.write(fd, data)  # a step: a crash here leaves it cut
            self.below.fsync(fd)
        finally:
            os.close(fd)
        self.below.unlink(src)


class RenameBeforeFsync(Layer):
    """Renames a temp file over its target before fsyncing it (its fsync and
    close wait for the rename): for a moment the new name may hold bytes that
    are not on disk yet. Not one of the whole-suite MUTANTS: the power-loss
    model's own test uses it."""

    def __init__(self) -> None:
        super().__init__()
        self._temps: set[int] = set()
        self._late: list[int] = []  # fsyncs waiting for the rename
        self._closes: set[int] = set()  # closes waiting for it (a pinned file is never closed)

    def open_temp(self, directory: str) -> tuple[int, str]:
        fd, name = self.below.open_temp(directory)
        self._temps.add(fd)
        return fd, name

    def fsync(self, fd: int) -> None:
        if fd in self._temps:
            self._late.append(fd)
        else:
            self.below.fsync(fd)

    def close(self, fd: int) -> None:
        if fd in self._late:
            self._closes.add(fd)
            return
        self._temps.discard(fd)
        self.below.close(fd)

    def rename(self, src: str, dst: str) -> None:
        self.below.rename(src, dst)
        late, self._late = self._late, []
        for fd in late:
            self._temps.discard(fd)
            self.below.fsync(fd)
            if fd in self._closes:
                self._closes.discard(fd)
                self.below.close(fd)


class NoDirFsyncAfterRename(Layer):
    """Skips the directory fsync that follows a rename (a write's commit, as
    the old broken ``_Writer.commit`` did); a new directory is still made
    durable in its parent, and a group commit's other directories are
    synced. Not one of the whole-suite MUTANTS: the power-loss model's own
    test uses it (its model needs a directory's creation durable before
    files are made in it)."""

    def __init__(self) -> None:
        super().__init__()
        self._renamed = False

    def rename(self, src: str, dst: str) -> None:
        self.below.rename(src, dst)
        self._renamed = True

    def mkdir(self, path: str) -> None:
        self._renamed = False
        self.below.mkdir(path)

    def fsync_dir(self, path: str) -> None:
        if self._renamed:
            self._renamed = False
            return
        self.below.fsync_dir(path)


class KeepTemps(Layer):
    """Never removes a temp file: a failed write leaves it behind."""

    def unlink(self, path: str) -> None:
        if not is_temp_name(os.path.basename(path)):
            self.below.unlink(path)


class UnlinkThenRename(Layer):
    """Removes the old file, then renames the new one in: for a moment the
    name holds nothing (a replace some ports do where rename cannot overwrite)."""

    def rename(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            self.below.unlink(dst)
        self.below.rename(src, dst)


MUTANTS: dict[str, type[Layer]] = {
    "no-file-fsync": NoFileFsync,
    "no-dir-fsync": NoDirFsync,
    "in-place": InPlace,
    "unlink-then-rename": UnlinkThenRename,
}


def install_from_environment() -> str | None:
    """Put the build ``SOS_MUTANT`` names in ``sos.storage.atomic.ops``; its name."""
    name = os.environ.get("SOS_MUTANT")
    if name:
        _atomic.ops = MUTANTS[name]()
    return name
