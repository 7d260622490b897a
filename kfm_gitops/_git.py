"""The only module that imports pygit2: a few typed operations on a repository, none touching the working tree
unless it says so.

pygit2 is imported inside the functions: importing it takes about 0.1 s, and `kfm plan validate` (the pre-commit
hook) never needs it. Its types are imported for the type checker only; other modules name them through this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from kfm_gitops.errors import ConflictError, KfmError

if TYPE_CHECKING:
    from pygit2 import Commit as Commit
    from pygit2 import Diff as Diff
    from pygit2 import Oid as Oid
    from pygit2 import Repository as Repository
    from pygit2 import Signature as Signature
    from pygit2 import Tree as Tree

# Where a commit or tree is named: an object id, or its 40 hex digits.
Rev: TypeAlias = "Oid | str"
# The files of a tree being built, folder by folder: a name maps to a file's bytes or to a folder.
_Folder: TypeAlias = "dict[str, _Folder | bytes]"


def discover(path: Path) -> Repository | None:
    """The repository holding ``path``, or None."""
    import pygit2

    found = pygit2.discover_repository(str(path))
    return pygit2.Repository(found) if found else None


def init(path: Path, initial_branch: str) -> Repository:
    import pygit2

    return pygit2.init_repository(str(path), initial_head=initial_branch)


def workdir(repo: Repository) -> Path:
    return Path(repo.workdir)


IDENTITY_HINT = ('tell git who you are: `git config --global user.name "Your Name"` and `git config --global '
                 'user.email you@example.com` (or set GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL)')


def identity(repo: Repository) -> tuple[str, str] | None:
    """(name, email) by git's rules: GIT_COMMITTER_* or GIT_AUTHOR_*, then user.name and user.email of git config,
    then $EMAIL for the email; None when git would not know who commits."""
    import pygit2

    name = os.environ.get("GIT_COMMITTER_NAME") or os.environ.get("GIT_AUTHOR_NAME")
    email = os.environ.get("GIT_COMMITTER_EMAIL") or os.environ.get("GIT_AUTHOR_EMAIL")
    config = repo.config
    for key, have in (("user.name", name), ("user.email", email)):
        if not have:
            try:
                value = config[key]
            except (KeyError, pygit2.GitError):
                continue
            name, email = (value, email) if key == "user.name" else (name, value)
    email = email or os.environ.get("EMAIL")
    return (name, email) if name and email else None


def signature(repo: Repository) -> Signature:
    """The committer by git's own rules (``identity``); refused, as git refuses, when it is not set."""
    import pygit2

    who = identity(repo)
    if who is None:
        raise KfmError("git does not know who you are, and kfm commits in your name", code="GIT_IDENTITY",
                       hint=IDENTITY_HINT)
    name, email = who
    date = os.environ.get("GIT_COMMITTER_DATE")
    if date and date.split()[0].lstrip("@").isdigit():
        parts = date.lstrip("@").split()
        offset = 0
        if len(parts) > 1:
            sign = -1 if parts[1].startswith("-") else 1
            hhmm = parts[1].lstrip("+-")
            offset = sign * (int(hhmm[:2]) * 60 + int(hhmm[2:4]))
        return pygit2.Signature(name, email, int(parts[0]), offset)
    return pygit2.Signature(name, email)


def set_local_identity(repo: Repository, name: str, email: str) -> None:
    """Give one repository an identity of its own (its .git/config), as `git config user.name` does."""
    repo.config["user.name"] = name
    repo.config["user.email"] = email


def branch_head(repo: Repository, branch: str) -> Oid | None:
    """The commit id a local branch points at, or None when it does not exist."""
    ref = repo.references.get(f"refs/heads/{branch}")
    return _direct_target(ref.target, branch) if ref is not None else None


def _direct_target(target: Oid | str, branch: str) -> Oid:
    """A branch's commit id; a branch that names another reference is not one kfm writes or reads."""
    if isinstance(target, str):
        raise KfmError(f"branch {branch} is a symbolic reference to {target}",
                       hint=f"point {branch} at a commit (`git branch -f {branch} <commit>`)")
    return target


def current_branch(repo: Repository) -> str | None:
    """The branch HEAD names (also when unborn), or None when detached."""
    if repo.head_is_detached:
        return None
    target = repo.references["HEAD"].target
    return str(target).removeprefix("refs/heads/")


def read_blob(repo: Repository, commit_id: Rev, path: str) -> bytes | None:
    commit = repo[commit_id]
    try:
        entry = commit.tree[path]
    except KeyError:
        return None
    return _blob_bytes(repo, entry.id)


def _blob_bytes(repo: Repository, oid: Oid) -> bytes | None:
    import pygit2

    obj = repo[oid]
    return bytes(obj.data) if isinstance(obj, pygit2.Blob) else None


def list_tree(repo: Repository, commit_id: Rev) -> dict[str, bytes]:
    """Every file in a commit: path -> bytes."""
    import pygit2

    out: dict[str, bytes] = {}

    def walk(tree: Tree, prefix: str) -> None:
        for entry in tree:
            obj = repo[entry.id]
            if isinstance(obj, pygit2.Tree):
                walk(obj, f"{prefix}{entry.name}/")
            elif isinstance(obj, pygit2.Blob):
                out[f"{prefix}{entry.name}"] = bytes(obj.data)

    walk(repo[commit_id].tree, "")
    return out


def build_tree(repo: Repository, files: Mapping[str, bytes], base_tree: Tree | None = None) -> Oid:
    """A tree: ``base_tree`` with ``files`` (repository-relative paths -> bytes) added or replaced."""
    import pygit2

    nested: _Folder = {}
    for path, data in files.items():
        parts = path.split("/")
        if any(p in ("", ".", "..", ".git") for p in parts):
            raise KfmError(f"refusing to write {path!r} into a commit")
        node = nested
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise KfmError(f"{path!r}: a file is in the way")
            node = child
        node[parts[-1]] = data

    def build(node: _Folder, base: Tree | None) -> Oid:
        tb = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
        for name, value in node.items():
            if isinstance(value, dict):
                sub = None
                if base is not None and name in base:
                    existing = repo[base[name].id]
                    sub = existing if isinstance(existing, pygit2.Tree) else None
                tb.insert(name, build(value, sub), pygit2.enums.FileMode.TREE)
            else:
                tb.insert(name, repo.create_blob(value), pygit2.enums.FileMode.BLOB)
        return tb.write()

    return build(nested, base_tree)


def commit_files(repo: Repository, branch: str, files: Mapping[str, bytes], message: str, *,
                 expected_head: Oid | None = None, orphan: bool = False) -> Oid:
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


def move_branch(repo: Repository, branch: str, new: Oid, old: Oid | None) -> None:
    """Point ``branch`` at ``new`` only if it still points at ``old`` (None: only if it does not exist)."""
    import pygit2

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


def stage(repo: Repository, paths: list[str]) -> None:
    """Add working-tree files to the index (and nothing else of what is staged)."""
    index = repo.index
    index.read()
    for p in paths:
        index.add(p)
    index.write()


def commit_index_paths(repo: Repository, branch: str, paths: list[str], message: str) -> Oid:
    """Commit the working-tree content of ``paths`` on ``branch`` (HEAD's branch), staging exactly those paths."""
    root = workdir(repo)
    files = {p: (root / p).read_bytes() for p in paths}
    commit = commit_files(repo, branch, files, message)
    stage(repo, paths)
    return commit


def head_commit(repo: Repository) -> str | None:
    """HEAD's commit id as 40 hex digits, or None on an unborn branch."""
    if repo.head_is_unborn:
        return None
    return str(repo.head.target)


def status(repo: Repository) -> dict[str, int]:
    """The working tree's status against HEAD, once: it hashes files whose stat data cannot be trusted, which on a
    large upstream folder costs as much as reading it, so callers share one."""
    return dict(repo.status())


def changed_paths(repo: Repository, prefixes: list[str], state: dict[str, int] | None = None) -> list[str]:
    """Paths under ``prefixes`` (files or folders, repository-relative) that differ from HEAD: modified, staged,
    deleted or untracked (ignored files do not count)."""
    import pygit2

    out = []
    for path, flags in (state if state is not None else status(repo)).items():
        if flags == pygit2.enums.FileStatus.CURRENT or flags & pygit2.enums.FileStatus.IGNORED:
            continue
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(path)
    return sorted(out)


def altered_paths(repo: Repository, prefixes: list[str], state: dict[str, int] | None = None) -> list[str]:
    """Tracked paths under ``prefixes`` whose content differs from HEAD (modified, deleted, renamed, type changed,
    in the index or the working tree); new, untracked files do not count."""
    import pygit2

    fs = pygit2.enums.FileStatus
    new = fs.WT_NEW | fs.INDEX_NEW | fs.IGNORED
    out = []
    for path, flags in (state if state is not None else status(repo)).items():
        if flags == fs.CURRENT or not (flags & ~new):
            continue
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(path)
    return sorted(out)


def committer_email(repo: Repository) -> str | None:
    who = identity(repo)
    return who[1] if who else None


def remote_branch_head(repo: Repository, remote: str, branch: str) -> Oid | None:
    """The commit a remote-tracking branch (``origin/release``) points at, or None."""
    ref = repo.references.get(f"refs/remotes/{remote}/{branch}")
    return _direct_target(ref.target, f"{remote}/{branch}") if ref is not None else None


def merge_base(repo: Repository, a: Oid, b: Oid) -> Oid | None:
    """The best common ancestor of two commits, or None when their histories are unrelated."""
    return repo.merge_base(a, b)


def track_remote_branch(repo: Repository, branch: str, remote: str) -> Oid:
    """Create the local ``branch`` at ``remote/branch`` with that as its upstream (as `git switch BRANCH` does in a
    fresh clone); the commit it points at."""
    import pygit2

    upstream = repo.branches.remote[f"{remote}/{branch}"]
    commit = repo[upstream.target]
    assert isinstance(commit, pygit2.Commit)
    local = repo.branches.local.create(branch, commit)
    local.upstream = upstream
    return commit.id


def _commit(repo: Repository, rev: Rev) -> Commit:
    import pygit2

    obj = repo[rev]
    if not isinstance(obj, pygit2.Commit):
        raise KfmError(f"{rev} is not a commit")
    return obj


def arrival(repo: Repository, head: Rev, path: str) -> Oid | None:
    """The commit on ``head``'s first-parent line that brought ``path`` into the branch (the merge of a pull
    request, or a direct commit), or None when ``head`` does not have it. Walks back only as far as that commit."""
    commit = _commit(repo, head)
    if path not in commit.tree:
        return None
    while commit.parents and path in commit.parents[0].tree:
        commit = commit.parents[0]
    return commit.id


def commit_message(repo: Repository, commit_id: Rev) -> str:
    return _commit(repo, commit_id).message


def parent_count(repo: Repository, commit_id: Rev) -> int:
    return len(_commit(repo, commit_id).parents)


def resolve(repo: Repository, rev: str) -> Oid:
    """The commit a revision names (a branch, a tag, a hex id)."""
    import pygit2

    return repo.revparse_single(rev).peel(pygit2.Commit).id


def tree_names(repo: Repository, commit_id: Rev, folder: str) -> list[str]:
    """The names directly inside ``folder`` at a commit (empty when it is not there)."""
    import pygit2

    tree = _commit(repo, commit_id).tree
    if folder:
        try:
            obj = repo[tree[folder].id]
        except KeyError:
            return []
        if not isinstance(obj, pygit2.Tree):
            return []
        tree = obj
    return sorted(entry.name for entry in tree if entry.name is not None)


def _blob_id(commit: Commit, path: str) -> Oid | None:
    try:
        return commit.tree[path].id
    except KeyError:
        return None


def last_change(repo: Repository, head: Rev, path: str) -> Oid | None:
    """The commit on ``head``'s first-parent line that last changed ``path`` (None when it never existed there).
    Walks back only as far as that commit."""
    commit = _commit(repo, head)
    blob = _blob_id(commit, path)
    if blob is None:
        return None
    while commit.parents and _blob_id(commit.parents[0], path) == blob:
        commit = commit.parents[0]
    return commit.id


def is_ancestor(repo: Repository, ancestor: Oid, descendant: Oid) -> bool:
    return ancestor == descendant or repo.merge_base(ancestor, descendant) == ancestor


def branch_from(repo: Repository, branch: str, start: Oid, files: Mapping[str, bytes], message: str) -> Oid:
    """A new branch at a commit on top of ``start`` that changes only ``files`` (no working tree touched)."""
    tree = build_tree(repo, files, _commit(repo, start).tree)
    sig = signature(repo)
    commit = repo.create_commit(None, sig, sig, message, tree, [start])
    move_branch(repo, branch, commit, None)
    return commit


def merge_branch(repo: Repository, into: str, other: str, message: str) -> Oid:
    """Merge ``other`` into ``into`` with a merge commit (as a pull request's merge button does), without the
    working tree; refused when they conflict. Compare-and-swap on ``into``."""
    ours, theirs = branch_head(repo, into), branch_head(repo, other)
    if ours is None or theirs is None:
        raise KfmError(f"cannot merge {other} into {into}: {other if theirs is None else into} does not exist")
    index = repo.merge_commits(ours, theirs)
    if index.conflicts is not None:
        paths = sorted({(c[1] or c[2] or c[0]).path for c in index.conflicts if any(c)})
        raise ConflictError(f"{other} conflicts with {into} in {', '.join(paths)}",
                            hint=f"bring {other} up to date with {into} (re-propose it), then merge again")
    tree = index.write_tree(repo)
    sig = signature(repo)
    commit = repo.create_commit(None, sig, sig, message, tree, [ours, theirs])
    move_branch(repo, into, commit, ours)
    return commit


def create_tag(repo: Repository, name: str, target: Oid) -> bool:
    """A lightweight tag that is never moved: True when made, False when it already names ``target``; refused when
    it names another commit."""
    ref = repo.references.get(f"refs/tags/{name}")
    if ref is not None:
        if ref.target != target:
            raise ConflictError(f"tag {name} already names {ref.target}, not {target}",
                                hint="tags of published versions are never moved")
        return False
    repo.references.create(f"refs/tags/{name}", target, force=False)
    return True


def git_dir(repo: Repository) -> Path:
    return Path(repo.path)


def parents(repo: Repository, commit_id: Rev) -> list[Oid]:
    return [p.id for p in _commit(repo, commit_id).parents]


def clear_stale_locks(repo: Repository) -> list[str]:
    """Remove the ref lock files a killed kfm left behind. Only call it holding kfm's advisory lock on the
    repository: then no other kfm is writing, and a lock file older than a minute belongs to no live git either."""
    import time

    removed = []
    root = git_dir(repo)
    for lock in [*root.glob("refs/heads/**/*.lock"), root / "packed-refs.lock"]:
        try:
            if lock.is_file() and time.time() - lock.stat().st_mtime > 60:
                lock.unlink()
                removed.append(str(lock.relative_to(root)))
        except OSError:
            continue
    return removed


@dataclass(frozen=True, slots=True)
class Change:
    """A path two trees disagree on: ``A`` added, ``M`` modified, ``D`` deleted, ``T`` type changed (no rename
    detection: a move is a deletion and an addition)."""

    path: str
    status: str


def _changes(diff: Diff) -> list[Change]:
    out = [Change(d.old_file.path if d.status_char() == "D" else d.new_file.path, d.status_char())
           for d in diff.deltas]
    return sorted(out, key=lambda c: (c.path, c.status))


def diff_paths(repo: Repository, old: Rev, new: Rev) -> list[Change]:
    """What changed between two commits: their trees are compared, never the history between them, and subtrees
    with the same id are skipped, so the cost follows the size of the change."""
    return _changes(_commit(repo, old).tree.diff_to_tree(_commit(repo, new).tree))


def staged_changes(repo: Repository) -> list[Change]:
    """What the index (what `git commit` would record) changes against HEAD (all of it on an unborn branch)."""
    repo.index.read()
    if repo.head_is_unborn:
        return [Change(entry.path, "A") for entry in repo.index]
    return _changes(repo.diff("HEAD", cached=True))


def staged_blob(repo: Repository, path: str) -> bytes | None:
    """A file as the index holds it (what `git commit` would record), or None when it is not staged."""
    try:
        entry = repo.index[path]
    except KeyError:
        return None
    return _blob_bytes(repo, entry.id)


def is_folder(repo: Repository, commit_id: Rev, path: str) -> bool:
    """Whether ``path`` is a folder at a commit."""
    import pygit2

    try:
        entry = _commit(repo, commit_id).tree[path]
    except KeyError:
        return False
    return isinstance(repo[entry.id], pygit2.Tree)


def export(repo: Repository, commit_id: Rev, folder: str, dest: Path,
           keep: Callable[[str], bool] = lambda path: True) -> int:
    """Write the files under ``folder`` at a commit below ``dest`` (at their repository paths), skipping the
    subtrees and files whose path ``keep`` refuses; how many files were written."""
    import pygit2

    tree = _commit(repo, commit_id).tree
    try:
        top = repo[tree[folder].id] if folder else tree
    except KeyError:
        return 0
    written = 0
    stack: list[tuple[str, object]] = [(folder, top)]
    while stack:
        path, obj = stack.pop()
        if isinstance(obj, pygit2.Blob):
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes(obj.data))
            written += 1
        elif isinstance(obj, pygit2.Tree):
            stack.extend((f"{path}/{e.name}" if path else str(e.name), repo[e.id]) for e in obj
                         if keep(f"{path}/{e.name}" if path else str(e.name)))
    return written


def push_atomic(root: Path, remote: str, updates: Sequence[tuple[str, str, str]]) -> None:
    """One atomic push of ``updates`` (local ref, remote ref, the remote's expected old value: 40 hex digits, or ""
    for "must not exist yet"), each with its lease: all land, or none (exit 4 when the remote moved)."""
    import subprocess

    leases = [f"--force-with-lease={dst}:{old}" for _, dst, old in updates]
    specs = [f"{src}:{dst}" for src, dst, _ in updates]
    done = subprocess.run(["git", "push", "--atomic", "--porcelain", *leases, remote, *specs], cwd=root,
                          capture_output=True, text=True)
    if done.returncode == 0:
        return
    said = (done.stderr or done.stdout).strip().splitlines()
    if any("stale info" in line or "fetch first" in line or "rejected" in line for line in said):
        raise ConflictError(f"{remote} moved while kfm was pushing: nothing was pushed",
                            hint=f"`git fetch {remote}`, then run the command again")
    raise KfmError(f"git push to {remote} failed: {said[-1] if said else done.returncode}",
                   hint="check the remote and its credentials")


def local_branches(repo: Repository) -> list[str]:
    return sorted(repo.branches.local)


def delete_branch(repo: Repository, branch: str, expected: Oid) -> None:
    """Delete a local branch only if it still points at ``expected``."""
    ref = repo.references.get(f"refs/heads/{branch}")
    if ref is None or ref.target != expected:
        raise ConflictError(f"branch {branch} moved while kfm was deleting it", hint="run the command again")
    ref.delete()


def remote_refs(root: Path, remote: str, patterns: Sequence[str]) -> dict[str, str]:
    """The refs of ``remote`` matching ``patterns``, as `git ls-remote` reads them: ref -> 40 hex."""
    import subprocess

    done = subprocess.run(["git", "ls-remote", remote, *patterns], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise KfmError(f"cannot read the refs of {remote}: {done.stderr.strip() or done.returncode}",
                       hint="check the remote's name and its credentials")
    return {ref: sha for sha, ref in (line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)}


def start_branch(repo: Repository, branch: str, at: str) -> None:
    """Create ``branch`` at the head of branch ``at`` and make it HEAD's branch (`git switch -c`): the commit is
    the same, so neither the working tree nor the index changes."""
    head = branch_head(repo, at)
    if head is None:
        raise KfmError(f"there is no branch {at} to start {branch} from")
    move_branch(repo, branch, head, None)
    switch(repo, branch)


def switch(repo: Repository, branch: str) -> None:
    """Make ``branch`` HEAD's branch when it holds exactly HEAD's tree (nothing in the working tree changes)."""
    target = branch_head(repo, branch)
    if target is None:
        raise KfmError(f"there is no branch {branch}")
    if not repo.head_is_unborn and _commit(repo, repo.head.target).tree.id != _commit(repo, target).tree.id:
        raise KfmError(f"{branch} holds other files than the work tree: switch with git (`git switch {branch}`)")
    repo.set_head(f"refs/heads/{branch}")
