"""The content-addressed object store: write-once objects named by their sha256, on a local disk or any fsspec
filesystem (s3://, gs://, az://, memory:// ...).

Layout: ``<root>/sha256/<first 2 hex>/<64 hex>``. Every write streams through the hash into a temporary object and
lands by rename, so a crash never leaves a half-written object under a real name. Writing a name that exists is a
no-op when the bytes match and a HASH_MISMATCH error when they do not. Reads can verify.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from kfm_gitops._fs import fsync_dir
from kfm_gitops.errors import KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import check_digest

# The optional extras that bring fsspec's backends for the object stores kfm documents.
BACKEND_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
CHUNK = 1024 * 1024  # hashing and copying buffer: large enough that hashlib releases the GIL


class StoreError(KfmError):
    """A store operation failed; ``code`` is a finding code (HASH_MISMATCH, OBJECT_MISSING, FILE_TOO_LARGE, ...)."""

    code = "STORE_ERROR"

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, code=code, hint=hint)


@dataclass(frozen=True, slots=True)
class Stored:
    digest: str
    size: int
    created: bool  # False when the object was already there


class _Backend(Protocol):
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def open_read(self, key: str) -> IO[bytes]: ...
    def open_temp(self) -> tuple[str, IO[bytes]]: ...
    def finish_temp(self, tmp: str, handle: IO[bytes]) -> None: ...
    def commit(self, tmp: str, key: str) -> bool: ...
    def remove(self, key: str) -> None: ...
    def root_exists(self) -> bool: ...
    def any_object(self) -> bool: ...


class _Local:
    """A folder on a local disk: fsync and atomic rename give crash safety."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._clear_stale_temps()

    def _clear_stale_temps(self, older_than: float = 3600.0) -> None:
        """Remove temp files that killed writers left: at once when the name says a process of this host wrote it
        and that process is gone; otherwise when nothing has written to it for an hour (a live writer touches its
        file with every block; a store shared by several hosts cannot ask another host about its processes)."""
        import time

        folder = self.root / "tmp"
        if not folder.is_dir():
            return
        limit = time.time() - older_than
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and (
                        _writer_is_gone(entry.name) or entry.stat().st_mtime < limit):
                    os.unlink(entry.path)

    def _p(self, key: str) -> Path:
        return self.root / key

    def root_exists(self) -> bool:
        return self.root.is_dir()

    def any_object(self) -> bool:
        folder = self.root / "sha256"
        if not folder.is_dir():
            return False
        with os.scandir(folder) as subs:
            return any(sub.is_dir() and _holds_a_file(sub.path) for sub in subs)

    def exists(self, key: str) -> bool:
        return self._p(key).is_file()

    def size(self, key: str) -> int:
        return self._p(key).stat().st_size

    def open_read(self, key: str) -> IO[bytes]:
        return open(self._p(key), "rb")

    def open_temp(self) -> tuple[str, IO[bytes]]:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        name = f"tmp/{temp_name()}"
        return name, open(self.root / name, "xb")

    def finish_temp(self, tmp: str, handle: IO[bytes]) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()

    def commit(self, tmp: str, key: str) -> bool:
        final = self._p(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            # link() fails if the name exists, so a concurrent writer of the same object is never overwritten.
            os.link(self.root / tmp, final)
            created = True
        except FileExistsError:
            created = False
            if file_digest(final) != "sha256:" + key.rsplit("/", 1)[-1]:
                # The object there is corrupt and these bytes are right (they hash to the name): heal it, atomically.
                os.replace(self.root / tmp, final)
                os.chmod(final, 0o444)
                fsync_dir(final.parent)
                return True
        os.unlink(self.root / tmp)
        if created:
            os.chmod(final, 0o444)  # write-once
            fsync_dir(final.parent)
        return created

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._p(key))


def _host() -> str:
    import socket

    return "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname()) or "localhost"


def temp_name() -> str:
    """A temp object's name: ``<host>_<pid>_<16 hex>``, so that a reader on the same host can tell whether the
    writer still lives."""
    return f"{_host()}_{os.getpid()}_{secrets.token_hex(8)}"


def _writer_is_gone(name: str) -> bool:
    """True only when ``name`` proves its writer was a process of this host that no longer exists."""
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != _host() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # alive under another user, or no pid of this system: not proven gone
        return False
    return False



def _holds_a_file(folder: str) -> bool:
    with os.scandir(folder) as entries:
        return any(e.is_file() for e in entries)


def file_digest(path: Path) -> str:
    """The sha256 digest of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return "sha256:" + h.hexdigest()


class _Fsspec:
    """Any fsspec filesystem. Object stores write each object whole, so put-then-rename is enough."""

    def __init__(self, url: str) -> None:
        import fsspec

        protocol = url.split("://", 1)[0]
        try:
            self.fs, self.root = fsspec.url_to_fs(url)
        except ImportError as exc:
            extra = BACKEND_EXTRAS.get(protocol)
            raise StoreError("STORE_BACKEND_MISSING", f"the store {url} needs fsspec's {protocol!r} backend, which is "
                             "not installed", hint=f"pip install 'kfm-gitops[{extra}]'" if extra else
                             f"install the fsspec backend for {protocol}://") from exc
        except ValueError as exc:
            raise StoreError("STORE_URL", f"the store {url}: {exc}",
                             hint="a store is a local folder or an fsspec URL (s3://, gs://, az://, memory://)"
                             ) from exc
        self.root = self.root.rstrip("/")

    def _p(self, key: str) -> str:
        return f"{self.root}/{key}"

    def root_exists(self) -> bool:
        return bool(self.fs.exists(self.root) or self.fs.exists(self._p("sha256")))

    def any_object(self) -> bool:
        return bool(self.fs.exists(self._p("sha256")) and self.fs.find(self._p("sha256"), maxdepth=2))

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._p(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._p(key)))

    def open_read(self, key: str) -> IO[bytes]:
        handle: IO[bytes] = self.fs.open(self._p(key), "rb")
        return handle

    def open_temp(self) -> tuple[str, IO[bytes]]:
        name = f"tmp/{temp_name()}"
        self.fs.makedirs(self._p("tmp"), exist_ok=True)
        handle: IO[bytes] = self.fs.open(self._p(name), "wb")
        return name, handle

    def finish_temp(self, tmp: str, handle: IO[bytes]) -> None:
        handle.close()

    def commit(self, tmp: str, key: str) -> bool:
        if self.fs.isfile(self._p(key)):
            self.fs.rm(self._p(tmp))
            return False
        parent = self._p(key).rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        self.fs.mv(self._p(tmp), self._p(key))
        return True

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._p(key))


def key_of(digest: str) -> str:
    hexd = check_digest(digest)[7:]
    return f"sha256/{hexd[:2]}/{hexd}"


class Store:
    """A content-addressed, write-once object store."""

    def __init__(self, url: str) -> None:
        self.url = url
        local = url[len("file://"):] if url.startswith("file://") else (None if "://" in url else url)
        self._b: _Backend = _Local(Path(local)) if local is not None else _Fsspec(url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def reachable(self) -> bool:
        """Whether the store's root exists (an empty store that exists is reachable)."""
        return self._b.root_exists()

    @property
    def is_local(self) -> bool:
        return isinstance(self._b, _Local)

    def exists(self, digest: str) -> bool:
        return self._b.exists(key_of(digest))

    def size(self, digest: str) -> int:
        return self._b.size(key_of(digest))

    def local_path(self, digest: str) -> Path | None:
        """The object's file on a local disk (for readers that want a path), or None for a remote store."""
        if isinstance(self._b, _Local):
            return self._b._p(key_of(digest))
        return None

    def put_stream(self, chunks: Iterable[bytes], *, expected: str | None = None,
                   max_bytes: int | None = None) -> Stored:
        """Stream bytes in, hashing as they are written; land them under their digest."""
        h = hashlib.sha256()
        size = 0
        with self._writing():
            tmp, handle = self._b.open_temp()
        try:
            for block in chunks:  # an OSError here is the source's, and stays one
                size += len(block)
                if max_bytes is not None and size > max_bytes:
                    raise StoreError("FILE_TOO_LARGE", f"more than the {max_bytes}-byte cap",
                                     hint="raise the connector's max_bytes if this size is expected")
                h.update(block)
                with self._writing():
                    handle.write(block)
            with self._writing():
                self._b.finish_temp(tmp, handle)
            digest = "sha256:" + h.hexdigest()
            if expected is not None and expected != digest:
                raise StoreError("HASH_MISMATCH", f"the bytes written as {expected} hash to {digest}",
                                 hint="the source changed or was corrupted in transit")
            with self._writing():
                created = self._b.commit(tmp, key_of(digest))
        except BaseException:
            with contextlib.suppress(OSError):  # closing may fail too (a full disk): the temp file goes anyway
                handle.close()
            with contextlib.suppress(OSError):
                self._b.remove(tmp)
            raise
        return Stored(digest, size, created)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """An OSError while writing is the store's: say so, with the store's name, not the source's."""
        try:
            yield
        except OSError as exc:
            raise StoreError("STORE_WRITE", f"cannot write to the store {self.url}: {exc.strerror or exc}",
                             hint="check the store's free space and permissions") from exc

    def put_bytes(self, data: bytes, *, expected: str | None = None) -> Stored:
        return self.put_stream([data], expected=expected)

    def put_file(self, path: Path, *, max_bytes: int | None = None) -> Stored:
        with open(path, "rb") as fh:
            return self.put_stream(iter(lambda: fh.read(CHUNK), b""), max_bytes=max_bytes)

    @contextlib.contextmanager
    def open(self, digest: str) -> Iterator[IO[bytes]]:
        """Read an object (unverified; use ``read_bytes`` or ``verify`` to check it)."""
        key = key_of(digest)
        try:
            handle = self._b.open_read(key)
        except FileNotFoundError as exc:
            raise StoreError("OBJECT_MISSING", f"{digest} is not in the store {self.url}",
                             hint="`kfm store pull` copies a dataset's objects from the shared store") from exc
        with handle:
            yield handle

    def iter_bytes(self, digest: str, *, verify: bool = True) -> Iterator[bytes]:
        """Stream an object; with ``verify`` the last block is followed by a HASH_MISMATCH error if it is corrupt."""
        h = hashlib.sha256()
        with self.open(digest) as fh:
            while block := fh.read(CHUNK):
                if verify:
                    h.update(block)
                yield block
        if verify and "sha256:" + h.hexdigest() != digest:
            raise StoreError("HASH_MISMATCH", f"the stored object {digest} is corrupt",
                             hint="restore it from another store (`kfm store pull`) or acquire again")

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        return b"".join(self.iter_bytes(digest, verify=verify))

    def verify(self, digest: str, size: int | None = None) -> str | None:
        """None when the object is present and intact, else OBJECT_MISSING, SIZE_MISMATCH (when ``size`` is given
        and differs: no byte is read) or HASH_MISMATCH."""
        try:
            if size is not None and self.exists(digest) and self.size(digest) != size:
                return "SIZE_MISMATCH"
            for _ in self.iter_bytes(digest, verify=True):
                pass
        except StoreError as exc:
            return exc.code
        return None

    def verify_all(self, objects: Mapping[str, int | None], jobs: int | None = None) -> dict[str, str | None]:
        """``verify`` every object (digest -> expected size or None), streamed, on all cores: hashlib releases the
        GIL on large buffers, so threads hash in parallel. Returns each digest's verdict."""
        from concurrent.futures import ThreadPoolExecutor

        digests = sorted(objects)
        if not digests:
            return {}
        with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
            verdicts = pool.map(lambda d: self.verify(d, objects[d]), digests)
            return dict(zip(digests, verdicts, strict=True))

    def is_empty(self) -> bool:
        """Whether the store holds no object at all (a store that does not exist yet holds none)."""
        return not self._b.root_exists() or not self._b.any_object()

    def copy_to(self, other: Store, digests: Iterable[str]) -> tuple[int, int]:
        """Copy objects that ``other`` lacks, verifying each as it streams. Returns (copied, already there)."""
        copied = present = 0
        for digest in digests:
            if other.exists(digest):
                present += 1
                continue
            other.put_stream(self.iter_bytes(digest, verify=True), expected=digest)
            copied += 1
        return copied, present


def pull_hint(store: Store, shared: str | None) -> str:
    """What to run when objects are missing from ``store``: pull them from the team's shared store (``shared``, the
    one kfm.yaml names), or, when the shared store is the one in force, push them from where they were made."""
    empty = store.is_empty()
    if shared is not None and shared.rstrip("/") == store.url.rstrip("/"):
        return (f"the team's store {shared} lacks them: push them from the machine that made them (`kfm store push "
                f"--to {shared}`)")
    if shared is not None:
        lead = "this store holds nothing yet: " if empty else ""
        return f"{lead}`kfm store pull --from {shared}` copies them from the team's store (kfm.yaml's store.shared)"
    lead = "this store holds nothing yet (a fresh clone?): " if empty else ""
    return (f"{lead}copy them from your team's store with `kfm store pull --from <its URL>`, and name it in kfm.yaml "
            "(store: {shared: <URL>}) so that kfm can say where it is")


def missing_finding(store: Store, shared: str | None, missing: Sequence[tuple[str, str, str]], named_by: str
                    ) -> Finding:
    """One finding for all the objects missing from ``store`` (``missing``: where each is named, its name and its
    digest): how many, the first of them, and what to run."""
    shown, name, digest = missing[0]
    count, files = len({d for _, _, d in missing}), len({s for s, _, _ in missing})
    return Finding("OBJECT_MISSING", f"{count} object(s) named by {files} {named_by}{'s' if files != 1 else ''} are "
                   f"not in the store {store.url} (the first: {name} {digest})", Location(shown),
                   hint=pull_hint(store, shared))
