"""The content-addressed store, on a local disk and on fsspec's in-memory filesystem (so that no local path leaks
through the interface)."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PROJECT, stored_digests
from kfm_gitops.store import Store, StoreError, key_of


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        yield Store(str(tmp_path / "objects"))
    else:
        url = f"memory://kfm-test-{uuid.uuid4().hex}"
        s = Store(url)
        yield s
        import fsspec

        fs = fsspec.filesystem("memory")
        if fs.exists(url[len("memory://"):]):
            fs.rm(url[len("memory://"):], recursive=True)


def test_put_and_read_back(store: Store) -> None:
    data = b"reports,1\n" * 1000
    stored = store.put_bytes(data)
    assert stored.digest == digest(data)
    assert stored.size == len(data)
    assert stored.created
    assert store.exists(stored.digest)
    assert store.read_bytes(stored.digest) == data
    assert store.size(stored.digest) == len(data)
    assert stored_digests(store) == [stored.digest]


def test_writing_the_same_bytes_again_is_a_no_op(store: Store) -> None:
    a = store.put_bytes(b"same")
    b = store.put_stream(iter([b"sa", b"me"]))
    assert a.digest == b.digest
    assert not b.created
    assert stored_digests(store) == [a.digest]


def test_writing_other_bytes_under_a_name_is_a_hash_mismatch(store: Store) -> None:
    expected = digest(b"what the manifest says")
    with pytest.raises(StoreError) as err:
        store.put_bytes(b"something else", expected=expected)
    assert err.value.code == "HASH_MISMATCH"
    assert not store.exists(expected)
    assert stored_digests(store) == []


def test_size_cap_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(StoreError) as err:
        store.put_stream(iter([b"x" * 600, b"y" * 600]), max_bytes=1000)
    assert err.value.code == "FILE_TOO_LARGE"
    assert stored_digests(store) == []


def test_an_interrupted_write_leaves_no_object(store: Store) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put_stream(broken())
    assert stored_digests(store) == []
    assert not store.exists(digest(b"partial"))


def test_missing_object(store: Store) -> None:
    d = digest(b"never stored")
    assert store.verify(d) == "OBJECT_MISSING"
    with pytest.raises(StoreError) as err:
        store.read_bytes(d)
    assert err.value.code == "OBJECT_MISSING"


def test_bad_digests_are_refused(store: Store) -> None:
    from kfm_gitops.identity import IdentityError

    for bad in ("sha256:" + "0" * 64, "sha256:ABC", "md5:" + "a" * 32, "sha256:" + "a" * 64 + "/../x"):
        with pytest.raises(IdentityError):
            store.exists(bad)


def test_copy_between_stores(tmp_path: Path) -> None:
    local = Store(str(tmp_path / "a"))
    remote = Store(f"memory://kfm-copy-{uuid.uuid4().hex}")
    ds = [local.put_bytes(f"object {i}".encode()).digest for i in range(5)]
    remote.put_bytes(b"object 0")
    copied, present = local.copy_to(remote, ds)
    assert (copied, present) == (4, 1)
    assert stored_digests(remote) == sorted(ds)
    assert all(remote.verify(d) is None for d in ds)


def test_local_objects_are_write_once_files(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "objects"))
    d = store.put_bytes(b"immutable").digest
    path = store.local_path(d)
    assert path is not None
    assert path == tmp_path / "objects" / key_of(d)
    assert path.stat().st_mode & 0o222 == 0
    assert os.listdir(tmp_path / "objects" / "tmp") == []


def test_tampering_is_detected(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "objects"))
    d = store.put_bytes(b"original bytes").digest
    path = store.local_path(d)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"original bytez")
    assert store.verify(d) == "HASH_MISMATCH"
    with pytest.raises(StoreError) as err:
        store.read_bytes(d)
    assert err.value.code == "HASH_MISMATCH"
    assert store.read_bytes(d, verify=False) == b"original bytez"


def test_concurrent_writers_of_one_object(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "objects"))
    data = os.urandom(2 * 1024 * 1024)
    results: list[bool] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            results.append(store.put_bytes(data).created)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results.count(True) == 1
    assert store.verify(digest(data)) is None


def test_writing_good_bytes_over_a_corrupt_object_heals_it(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "objects"))
    data = b"the right bytes"
    d = store.put_bytes(data).digest
    path = store.local_path(d)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"the wrong bytes")
    assert store.verify(d) == "HASH_MISMATCH"
    again = store.put_bytes(data)
    assert again.created and again.digest == d
    assert store.verify(d) is None


def test_a_full_disk_is_the_store_s_error_and_leaves_no_temp_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    from typing import IO

    from kfm_gitops import store as store_module

    class Full:
        def __init__(self, handle: IO[bytes]) -> None:
            self.handle = handle

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")  # closing fails too

    real = store_module._Local.open_temp

    def full_temp(self: object) -> tuple[str, object]:
        name, handle = real(self)  # type: ignore[arg-type]
        return name, Full(handle)

    monkeypatch.setattr(store_module._Local, "open_temp", full_temp)
    s = Store(str(tmp_path / "objects"))
    with pytest.raises(StoreError) as info:
        s.put_bytes(b"payload")
    assert info.value.code == "STORE_WRITE"
    assert info.value.message == f"cannot write to the store {tmp_path / 'objects'}: No space left on device"
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_temp_files_of_killed_writers_are_cleared(tmp_path: Path) -> None:
    import time

    tmp = tmp_path / "objects" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "stale").write_bytes(b"half")
    (tmp / "live").write_bytes(b"being written")
    old = time.time() - 7200
    os.utime(tmp / "stale", (old, old))
    Store(str(tmp_path / "objects"))
    assert sorted(p.name for p in tmp.iterdir()) == ["live"]


def test_a_temp_file_of_a_dead_writer_on_this_host_goes_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from kfm_gitops.store import temp_name

    host, pid, token = temp_name().split("_")
    assert (int(pid), len(token)) == (os.getpid(), 16)
    assert host == "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    tmp = tmp_path / "objects" / "tmp"
    tmp.mkdir(parents=True)
    names = {"dead": f"{host}_{dead}_{'a' * 16}", "alive": f"{host}_{os.getpid()}_{'b' * 16}",
             "elsewhere": f"other-host_{dead}_{'c' * 16}", "odd": f"{host}_{'9' * 30}_{'d' * 16}"}
    for name in names.values():
        (tmp / name).write_bytes(b"half")  # all written just now: the hour rule keeps them
    Store(str(tmp_path / "objects"))
    assert sorted(p.name for p in tmp.iterdir()) == sorted(n for k, n in names.items() if k != "dead")


def test_a_writer_killed_mid_object_leaves_nothing_for_the_next_one(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "objects"
    writer = ("import sys, time\nfrom kfm_gitops.store import Store\n"
              "def blocks():\n    yield b'x' * 4096\n    time.sleep(600)\n    yield b''\n"
              f"Store({str(root)!r}).put_stream(blocks())\n")
    proc = subprocess.Popen([sys.executable, "-c", writer], env={**os.environ, "PYTHONPATH": str(PROJECT)})
    deadline = time.monotonic() + 30
    while not (root / "tmp").is_dir() or not any((root / "tmp").iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, "the writer never started its object"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list((root / "tmp").iterdir())) == 1  # what the killed writer left
    Store(str(root))
    assert list((root / "tmp").iterdir()) == []
