"""The only module that imports pygit2: a few typed operations on a repository, none touching the working tree
unless it says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfm_gitops.errors import ConflictError, KfmError

FALLBACK_NAME = "kfm"
FALLBACK_EMAIL = "kfm@localhost"


def _pygit2() -> Any:
    import pygit2

    return pygit2


def discover(path: Path) -> Any | None:
    """The repository holding ``path``, or None."""
    pygit2 = _pygit2()
    found = pygit2.discover_repository(str(path))
    return pygit2.Repository(found) if found else None


def init(path: Path, initial_branch: str) -> Any:
    pygit2 = _pygit2()
    return pygit2.init_repository(str(path), initial_head=initial_branch)


def workdir(repo: Any) -> Path:
    return Path(repo.workdir)


def signature(repo: Any) -> Any:
    """The committer from git config or GIT_* variables; kfm's own name when neither is set."""
    pygit2 = _pygit2()
    name = os.environ.get("GIT_COMMITTER_NAME") or os.environ.get("GIT_AUTHOR_NAME")
    email = os.environ.get("GIT_COMMITTER_EMAIL") or os.environ.get("GIT_AUTHOR_EMAIL")
    if not (name and email):
        try:
            sig = repo.default_signature
            name, email = name or sig.name, email or sig.email
        except (KeyError, pygit2.GitError):
            pass
    date = os.environ.get("GIT_COMMITTER_DATE")
    if date and date.split()[0].lstrip("@").isdigit():
        parts = date.lstrip("@").split()
        offset = 0
        if len(parts) > 1:
            sign = -1 if parts[1].startswith("-") else 1
            hhmm = parts[1].lstrip("+-")
            offset = sign * (int(hhmm[:2]) * 60 + int(hhmm[2:4]))
        return pygit2.Signature(name or FALLBACK_NAME, email or FALLBACK_EMAIL, int(parts[0]), offset)
    return pygit2.Signature(name or FALLBACK_NAME, email or FALLBACK_EMAIL)


def branch_head(repo: Any, branch: str) -> Any | None:
    """The commit id a local branch points at, or None when it does not exist."""
    ref = repo.references.get(f"refs/heads/{branch}")
    return ref.target if ref is not None else None


def current_branch(repo: Any) -> str | None:
    """The branch HEAD names (also when unborn), or None when detached."""
    if repo.head_is_detached:
        return None
    target = repo.references["HEAD"].target
    return str(target).removeprefix("refs/heads/")


def read_blob(repo: Any, commit_id: Any, path: str) -> bytes | None:
    commit = repo[commit_id]
    try:
        entry = commit.tree[path]
    except KeyError:
        return None
    obj = repo[entry.id]
    return bytes(obj.data) if obj.type_str == "blob" else None


def list_tree(repo: Any, commit_id: Any) -> dict[str, bytes]:
    """Every file in a commit: path -> bytes."""
    out: dict[str, bytes] = {}

    def walk(tree: Any, prefix: str) -> None:
        for entry in tree:
            obj = repo[entry.id]
            if obj.type_str == "tree":
                walk(obj, f"{prefix}{entry.name}/")
            elif obj.type_str == "blob":
                out[f"{prefix}{entry.name}"] = bytes(obj.data)

    walk(repo[commit_id].tree, "")
    return out


def build_tree(repo: Any, files: Mapping[str, bytes], base_tree: Any | None = None) -> Any:
    """A tree: ``base_tree`` with ``files`` (repository-relative paths -> bytes) added or replaced."""
    pygit2 = _pygit2()
    nested: dict[str, Any] = {}
    for path, data in files.items():
        parts = path.split("/")
        if any(p in ("", ".", "..", ".git") for p in parts):
            raise KfmError(f"refusing to write {path!r} into a commit")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise KfmError(f"{path!r}: a file is in the way")
        node[parts[-1]] = data

    def build(node: dict[str, Any], base: Any | None) -> Any:
        tb = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
        for name, value in node.items():
            if isinstance(value, dict):
                sub = None
                if base is not None and name in base:
                    existing = repo[base[name].id]
                    sub = existing if existing.type_str == "tree" else None
                tb.insert(name, build(value, sub), pygit2.enums.FileMode.TREE)
            else:
                tb.insert(name, repo.create_blob(value), pygit2.enums.FileMode.BLOB)
        return tb.write()

    return build(nested, base_tree)


def commit_files(repo: Any, branch: str, files: Mapping[str, bytes], message: str, *,
                 expected_head: Any | None = None, orphan: bool = False) -> Any:
    """Commit ``files`` on ``branch`` without touching the working tree; compare-and-swap on the branch head."""
    head = branch_head(repo, branch)
    if expected_head is not None and head != expected_head:
        raise ConflictError(f"branch {branch} moved while kfm was writing to it", hint="run the command again")
    base_tree = repo[head].tree if head is not None and not orphan else None
    tree = build_tree(repo, files, base_tree)
    sig = signature(repo)
    parents = [head] if head is not None and not orphan else []
    commit = repo.create_commit(None, sig, sig, message, tree, parents)
    move_branch(repo, branch, commit, head)
    return commit


def move_branch(repo: Any, branch: str, new: Any, old: Any | None) -> None:
    """Point ``branch`` at ``new`` only if it still points at ``old`` (None: only if it does not exist)."""
    pygit2 = _pygit2()
    name = f"refs/heads/{branch}"
    try:
        if old is None:
            repo.references.create(name, new, force=False)
            return
        with repo.transaction() as txn:
            txn.lock_ref(name)
            # Read under the lock: nobody can move the ref between this comparison and the write.
            current = repo.references.get(name)
            if current is None or current.target != old:
                raise ConflictError(f"branch {branch} moved while kfm was writing to it",
                                    hint="run the command again")
            txn.set_target(name, new, message=f"kfm: move {branch}")
    except pygit2.AlreadyExistsError as exc:
        raise ConflictError(f"branch {branch} was created while kfm was writing to it",
                            hint="run the command again") from exc
    except pygit2.GitError as exc:
        if "lock" in str(exc).lower():
            raise ConflictError(f"branch {branch} is locked by another writer: {exc}",
                                hint="run the command again") from exc
        raise


def stage(repo: Any, paths: list[str]) -> None:
    """Add working-tree files to the index (and nothing else of what is staged)."""
    index = repo.index
    index.read()
    for p in paths:
        index.add(p)
    index.write()


def commit_index_paths(repo: Any, branch: str, paths: list[str], message: str) -> Any:
    """Commit the working-tree content of ``paths`` on ``branch`` (HEAD's branch), staging exactly those paths."""
    root = workdir(repo)
    files = {p: (root / p).read_bytes() for p in paths}
    commit = commit_files(repo, branch, files, message)
    stage(repo, paths)
    return commit


def head_commit(repo: Any) -> str | None:
    """HEAD's commit id as 40 hex digits, or None on an unborn branch."""
    if repo.head_is_unborn:
        return None
    return str(repo.head.target)


def status(repo: Any) -> dict[str, int]:
    """The working tree's status against HEAD, once: it hashes files whose stat data cannot be trusted, which on a
    large upstream folder costs as much as reading it, so callers share one."""
    return dict(repo.status())


def changed_paths(repo: Any, prefixes: list[str], state: dict[str, int] | None = None) -> list[str]:
    """Paths under ``prefixes`` (files or folders, repository-relative) that differ from HEAD: modified, staged,
    deleted or untracked (ignored files do not count)."""
    pygit2 = _pygit2()
    out = []
    for path, flags in (state if state is not None else status(repo)).items():
        if flags == pygit2.enums.FileStatus.CURRENT or flags & pygit2.enums.FileStatus.IGNORED:
            continue
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(path)
    return sorted(out)


def altered_paths(repo: Any, prefixes: list[str], state: dict[str, int] | None = None) -> list[str]:
    """Tracked paths under ``prefixes`` whose content differs from HEAD (modified, deleted, renamed, type changed,
    in the index or the working tree); new, untracked files do not count."""
    pygit2 = _pygit2()
    fs = pygit2.enums.FileStatus
    new = fs.WT_NEW | fs.INDEX_NEW | fs.IGNORED
    out = []
    for path, flags in (state if state is not None else status(repo)).items():
        if flags == fs.CURRENT or not (flags & ~new):
            continue
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(path)
    return sorted(out)


def committer_email(repo: Any) -> str | None:
    sig = signature(repo)
    return None if sig.email == FALLBACK_EMAIL else str(sig.email)


def remote_branch_head(repo: Any, remote: str, branch: str) -> Any | None:
    """The commit a remote-tracking branch (``origin/release``) points at, or None."""
    ref = repo.references.get(f"refs/remotes/{remote}/{branch}")
    return ref.target if ref is not None else None


def merge_base(repo: Any, a: Any, b: Any) -> Any | None:
    """The best common ancestor of two commits, or None when their histories are unrelated."""
    return repo.merge_base(a, b)


def track_remote_branch(repo: Any, branch: str, remote: str) -> Any:
    """Create the local ``branch`` at ``remote/branch`` with that as its upstream (as `git switch BRANCH` does in a
    fresh clone); the commit it points at."""
    upstream = repo.branches.remote[f"{remote}/{branch}"]
    local = repo.branches.local.create(branch, repo[upstream.target])
    local.upstream = upstream
    return upstream.target


def arrival(repo: Any, head: Any, path: str) -> Any | None:
    """The commit on ``head``'s first-parent line that brought ``path`` into the branch (the merge of a pull
    request, or a direct commit), or None when ``head`` does not have it. Walks back only as far as that commit."""
    commit = repo[head]
    if path not in commit.tree:
        return None
    while commit.parents and path in commit.parents[0].tree:
        commit = commit.parents[0]
    return commit.id


def commit_message(repo: Any, commit_id: Any) -> str:
    return str(repo[commit_id].message)


def parent_count(repo: Any, commit_id: Any) -> int:
    return len(repo[commit_id].parents)


def resolve(repo: Any, rev: str) -> Any:
    """The commit a revision names (a branch, a tag, a hex id)."""
    return repo.revparse_single(rev).peel(_pygit2().Commit).id
