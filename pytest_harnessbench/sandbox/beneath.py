"""Open a file beneath a directory without following links: the local backend's file tools.

The local backend's ``read_file`` and ``write_file`` run in the controller's
process, as its user (root in CI), on a directory that the model's commands
write too. Checking a resolved path and then opening it by name leaves a race:
a process left running in the background swaps a directory for a symbolic link
between the check and the open, and the controller reads ``/etc/shadow`` or
writes anywhere. So each path component is opened relative to the directory
file descriptor of the one before it, with ``O_NOFOLLOW``: a link anywhere on
the path is refused, whenever it appears. Only regular files are opened (a FIFO
would block the controller forever).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from .base import SandboxPathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def components(root: Path, path: str) -> list[str]:
    """``path``'s names below ``root``; ``..`` is resolved by name, never by following a link.

    Raises:
        SandboxPathError: an absolute path outside ``root``, or ``..`` leading out of it.
        IsADirectoryError: the path names ``root`` itself.
    """
    pure = PurePosixPath(path)
    if pure.is_absolute():
        try:
            pure = pure.relative_to(root)
        except ValueError:
            raise SandboxPathError(f"{path}: outside the sandbox's working directory") from None
    names: list[str] = []
    for part in pure.parts:
        if part == "..":
            if not names:
                raise SandboxPathError(f"{path}: outside the sandbox's working directory")
            names.pop()
        elif part != ".":
            names.append(part)
    if not names:
        raise IsADirectoryError(f"{path}: the working directory itself")
    return names


def _open_dir(name: str, dir_fd: int, path: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SandboxPathError(f"{path}: {name} is a symbolic link or not a directory "
                                   "(the file tools follow no links)") from None
        raise


def open_beneath(root: Path, path: str, flags: int, mode: int = 0o644, make_parents: bool = False,
                 owner: tuple[int, int] | None = None) -> int:
    """A file descriptor of the regular file ``path`` beneath ``root``, opened with ``flags``.

    ``owner``: (uid, gid) given to the directories made and to the file (a root
    session's confined sandbox runs as another user, who must be able to change
    what the task wrote). A file with other hard links keeps its owner.

    Raises:
        SandboxPathError: the path leaves ``root``, passes a link, or names no regular file.
        FileNotFoundError, IsADirectoryError: as ``open`` would.
    """
    names = components(root, path)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for name in names[:-1]:
            if make_parents:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    made = True
                except FileExistsError:
                    made = False
            parent, fd = fd, _open_dir(name, fd, path)
            os.close(parent)
            if make_parents and made and owner is not None:
                os.fchown(fd, *owner)
        try:
            file_fd = os.open(names[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SandboxPathError(f"{path}: a symbolic link (the file tools follow no links)") from None
            if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened for writing
                raise SandboxPathError(f"{path}: not a regular file") from None
            raise
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(file_fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{path}: a directory")
        raise SandboxPathError(f"{path}: not a regular file")
    if owner is not None and info.st_nlink == 1:
        os.fchown(file_fd, *owner)
    os.set_blocking(file_fd, True)
    return file_fd
