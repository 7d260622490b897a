"""File primitives: bounded, checked reads and atomic writes (temp file, fsync, rename)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kfm_gitops.findings import Finding, Location

MAX_TEXT_BYTES = 1024 * 1024  # contracts, plans and manifests are small; anything larger is refused


def display_path(path: Path) -> str:
    """A path as the user should see it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def leaves_folder(text: str, *, absolute_ok: bool) -> bool:
    """Whether a relative path (a root below the repository, a pattern below the root) can leave its folder."""
    p = PurePosixPath(text)
    if p.is_absolute():
        return not absolute_ok
    return ".." in p.parts or "\\" in text


def read_text(path: Path, *, shown: str | None = None, limit: int = MAX_TEXT_BYTES) -> str | Finding:
    """Read a small UTF-8 file, or say precisely why not (a Finding, never an exception)."""
    where = shown if shown is not None else display_path(path)
    loc = Location(where)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Finding("FILE_NOT_FOUND", "no such file", loc, hint="check the path")
    except OSError as exc:
        return Finding("FILE_UNREADABLE", f"cannot read: {exc.strerror or exc}", loc)
    if stat.S_ISDIR(st.st_mode):
        return Finding("FILE_IS_DIRECTORY", "is a directory, not a file", loc, hint="pass the file inside it")
    if not stat.S_ISREG(st.st_mode):
        return Finding("FILE_UNREADABLE", "not a regular file", loc)
    if st.st_size > limit:
        return Finding(
            "FILE_TOO_LARGE",
            f"{st.st_size} bytes is over the {limit}-byte limit for this kind of file",
            loc,
            hint="this file should be small; check that it is the right one",
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        return Finding("FILE_UNREADABLE", f"cannot read: {exc.strerror or exc}", loc)
    if len(data) > limit:
        return Finding("FILE_TOO_LARGE", f"over the {limit}-byte limit for this kind of file", loc)
    if not data.strip():
        return Finding("FILE_EMPTY", "the file is empty", loc, hint="write the document into it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return Finding(
            "FILE_NOT_UTF8",
            f"byte 0x{data[exc.start]:02x} is not valid UTF-8",
            Location(where, line, col),
            hint="save the file as UTF-8",
        )


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    With ``exclusive`` the write fails with FileExistsError if ``path`` exists (append-only evidence).
    """
    atomic_write_stream(path, [data], exclusive=exclusive)


def atomic_write_stream(path: Path, chunks: Iterable[bytes], *, exclusive: bool = False) -> None:
    """``atomic_write`` of bytes that arrive in blocks (a large file in bounded memory); an exception raised by
    ``chunks`` leaves nothing at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for block in chunks:
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        try:  # a file replaced keeps its permissions (a read-only plan stays read-only); a new one is 0644
            mode = stat.S_IMODE(os.stat(path).st_mode) if not exclusive else 0o644
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        if exclusive:
            # link() fails if the name exists: no window in which a second writer could be overwritten.
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def json_bytes(doc: Any) -> bytes:
    """The one serialisation of the JSON files kfm writes for people to read: sorted keys, two-space indent, a
    final newline."""
    import json

    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def staging_dir(root: Path) -> Path:
    """Where a folder of files is assembled before it is renamed into place (emptied by the next RepoLock)."""
    return root / ".kfm" / "staging"


def write_folder(root: Path, name: str, final: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (names relative to the folder) into staging/``name`` and rename that folder to ``final`` when
    all of them are written: an interrupted write leaves nothing at ``final``."""
    import shutil

    staging = staging_dir(root) / name
    if staging.exists():
        shutil.rmtree(staging)
    for fname, data in files.items():
        atomic_write(staging / fname, data)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, final)
    fsync_dir(final.parent)


def probe_writable(directory: Path) -> None:
    """Raise the OSError an atomic write into ``directory`` would meet (permissions, a read-only mount), before
    writing anything that must land together with it."""
    fd, tmp = tempfile.mkstemp(prefix=".kfm-probe.", dir=directory)
    os.close(fd)
    os.unlink(tmp)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) and SIGTERM while a few writes that belong together land, then deliver it: a
    version folder and the plan's expected id are written both or neither. Outside the main thread (where
    signal handlers cannot be set) it does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


class RepoLock:
    """kfm's writers on one repository take turns: an OS advisory lock (flock) on .kfm/lock, which the kernel
    releases when the process dies, so a killed kfm never leaves a stale lock behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / ".kfm" / "lock"
        self._fd: int | None = None

    def __enter__(self) -> RepoLock:
        import fcntl
        import sys

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"kfm: waiting for another kfm working on this repository ({self.path})", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        # Holding the lock, no other kfm is writing here: what a killed run left in staging is garbage.
        import shutil

        staging = staging_dir(self.root)
        if staging.is_dir():
            for leftover in staging.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
