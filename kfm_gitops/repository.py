"""`kfm init`: scaffold a governed repository with its two branches, adding only what is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from kfm_gitops import _git
from kfm_gitops._fs import atomic_write
from kfm_gitops.config import CONFIG_NAME, OBLIGATION_TYPES, POLICY_LABELS, QUARANTINE_REASONS, TIME_AXES
from kfm_gitops.errors import KfmError

KFM_YAML = f"""\
# kfm-gitops repository configuration. It is identical on the main and release branches; change it through a
# reviewed pull request (CODEOWNERS), because every gate reads it.
kfm_config_version: v1

# The content-addressed object store for data bytes (write-once, named by sha256).
# KFM_STORE or --store override it; s3://, gs:// and az:// URLs go through fsspec.
store: .kfm/objects

branches:
  main: main                # plans and append-only evidence
  release: release          # published pointers, the audit ledger, incident notes
  published_prefix: published/

# Vocabularies. Policy labels are ordered from least to most restrictive: a plan may tighten a dataset's label,
# never loosen it. Unknown terms are denied.
vocabularies:
  time_axes: [{", ".join(TIME_AXES)}]
  policy_labels: [{", ".join(POLICY_LABELS)}]
  obligation_types: [{", ".join(OBLIGATION_TYPES)}]
  quarantine_reasons: [{", ".join(QUARANTINE_REASONS)}]

# Who holds which role (principals as they appear in reviews and Approved-by trailers).
roles:
  steward: []
  release_manager: []

# The approvals each policy label needs before promotion.
approvals:
  public: [{{role: steward, min: 1}}]
  public_generalized: [{{role: steward, min: 1}}]
  internal: [{{role: steward, min: 1}}]
  restricted: [{{role: steward, min: 2}}]
  restricted_sensitive_location: [{{role: steward, min: 2}}]
  embargoed: [{{role: steward, min: 2}}]
"""

GITIGNORE = """\
# kfm's local object store, staging area and lock: data bytes never go into git.
.kfm/
"""

PRE_COMMIT_CONFIG = """\
# The same checks as CI, on every commit: `pre-commit install` once per clone.
repos:
  - repo: local
    hooks:
      - id: kfm-plan-validate
        name: kfm plan validate
        entry: kfm plan validate
        language: unsupported
        files: ^plans/.+\\.ya?ml$
      - id: kfm-dataset-validate
        name: kfm dataset validate
        entry: kfm dataset validate
        language: unsupported
        files: ^datasets/[^/]+/(dataset|pipeline)\\.yaml$
      - id: kfm-evidence-append-only
        name: kfm evidence check-append-only
        entry: kfm evidence check-append-only
        language: unsupported
        files: ^(data/raw|releases|plans)/
        always_run: true
        pass_filenames: false
      - id: kfm-manifest-validate
        name: kfm manifest validate
        entry: kfm manifest validate
        language: unsupported
        files: ^(releases/.+/(promotion-manifest|receipt)|data/raw/[^/]+/[^/]+)\\.json$
"""

KEEP = b""
REMOTE = "origin"  # the remote a clone came from: its branches are the team's
# The runbook every plan names in its `runbook:` field (a checklist of the kfm workflow, the team's to edit).
RUNBOOK = "docs/runbooks/pipelines/rb-pipeline-backfill.md"
RUNBOOK_TEXT = resources.files("kfm_gitops").joinpath("runbook.md").read_bytes()

# The workflows of a governed repository: the gates and approvals as required checks, the backfill fan-out and the
# reconcile. They install kfm as a pinned release (this repository's own CI installs its checkout instead).
WORKFLOWS = ("gates", "approvals", "backfill", "reconcile")
INSTALL_PLACEHOLDER = "KFM_INSTALL_SPEC"


def workflow_files(install: str | None = None) -> dict[str, bytes]:
    """``.github/workflows/*.yml`` as kfm init writes them; ``install`` is what pip installs (default: this release
    of kfm-gitops, pinned)."""
    from kfm_gitops import __version__

    spec = install or f"kfm-gitops=={__version__}"
    folder = resources.files("kfm_gitops").joinpath("workflows")
    return {f".github/workflows/{name}.yml":
            folder.joinpath(f"{name}.yml").read_text(encoding="utf-8").replace(INSTALL_PLACEHOLDER, spec).encode()
            for name in WORKFLOWS}


# Files every governed repository has on main. Those in SHARED are on release too, byte for byte: a pull request
# runs the workflows of its own merge result, so both branches carry the same ones.
SCAFFOLD: dict[str, bytes] = {
    CONFIG_NAME: KFM_YAML.encode(),
    ".gitignore": GITIGNORE.encode(),
    ".pre-commit-config.yaml": PRE_COMMIT_CONFIG.encode(),
    RUNBOOK: RUNBOOK_TEXT,
    "datasets/.gitkeep": KEEP,
    "plans/.gitkeep": KEEP,
    "releases/.gitkeep": KEEP,
    "data/raw/.gitkeep": KEEP,
    **workflow_files(),
}
SHARED: tuple[str, ...] = (CONFIG_NAME, ".gitignore", *(f".github/workflows/{name}.yml" for name in WORKFLOWS))


@dataclass(slots=True)
class InitResult:
    root: Path
    created_repository: bool = False
    added: list[str] = field(default_factory=list)
    main_commit: str | None = None
    release_commit: str | None = None
    notes: list[str] = field(default_factory=list)


def _ignore_the_store(repo: _git.Repository, root: Path, result: InitResult) -> bool:
    """An existing .gitignore that does not ignore .kfm/ gets kfm's lines appended (the local store must never be
    committed); a .gitignore with uncommitted changes is left to its owner, with a note."""
    path = root / ".gitignore"
    if not path.is_file() or path.is_symlink():
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    if any(line.strip() in (".kfm", ".kfm/", "/.kfm", "/.kfm/") for line in text.splitlines()):
        return False
    if _git.changed_paths(repo, [".gitignore"]):
        result.notes.append(".gitignore has uncommitted changes: add the line `.kfm/` to it yourself")
        return False
    atomic_write(path, (text + ("" if text.endswith("\n") or not text else "\n") + "\n" + GITIGNORE).encode())
    result.added.append(".gitignore (the line .kfm/)")
    return True


def _join_remote_release(repo: _git.Repository, release: str, result: InitResult) -> _git.Oid | None:
    """In a clone, the release branch is the team's: made from origin/release (tracking it) when missing here, and
    refused when the local one shares no history with it (a push would be refused, and the published pointers would
    fork)."""
    local = _git.branch_head(repo, release)
    remote = _git.remote_branch_head(repo, REMOTE, release)
    if remote is None:
        return local
    if local is None:
        result.notes.append(f"{release}: made from {REMOTE}/{release}, which it tracks")
        return _git.track_remote_branch(repo, release, REMOTE)
    if local != remote and _git.merge_base(repo, local, remote) is None:
        raise KfmError(f"the branch {release} here and {REMOTE}/{release} share no history",
                       hint=f"if the local {release} holds nothing of yours, replace it with the team's "
                       f"(`git branch -f {release} {REMOTE}/{release}`), then run kfm init again")
    return local


def init(directory: Path, extra: dict[str, bytes] | None = None, message: str = "kfm init: governed repository"
         ) -> InitResult:
    """Make ``directory`` a governed repository. Existing files are never changed; missing ones are added and
    committed on main; the release branch is created (an orphan holding the shared files) when missing."""
    if directory.exists() and not directory.is_dir():
        raise KfmError(f"{directory} exists and is not a folder", hint="name a new or existing folder")
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    result = InitResult(root)
    repo = _git.discover(root)
    if repo is not None and _git.workdir(repo).resolve() != root:
        raise KfmError(f"{root} is inside the git repository at {_git.workdir(repo)}",
                       hint="run kfm init at the top of the repository")
    if repo is None:
        repo = _git.init(root, "main")
        result.created_repository = True
    main = "main"
    if _git.branch_head(repo, main) is None and _git.remote_branch_head(repo, REMOTE, main) is not None:
        raise KfmError(f"{main} has no commit here, but {REMOTE}/{main} exists: kfm init would start a history "
                       f"unrelated to the team's", hint=f"check out the team's branch (`git checkout -B {main} "
                       f"{REMOTE}/{main}`), then run kfm init again")
    branch = _git.current_branch(repo)
    if branch != main:
        hint = (f"rename the branch (`git branch -m {branch} {main}`) or check out {main}, then run kfm init again"
                if branch else f"check out {main} and run kfm init again")
        raise KfmError(f"HEAD is on {branch or 'a detached commit'}, not {main}: a governed repository keeps its "
                       f"plans and evidence on {main}", hint=hint)
    from kfm_gitops.policy import default_files

    wanted = {**SCAFFOLD, **default_files(), **(extra or {})}
    if _git.branch_head(repo, "release") is None or any(not (root / rel).exists() for rel in wanted):
        _git.signature(repo)  # kfm will commit: refused before anything is written when git has no identity
    for rel, data in wanted.items():
        target = root / rel
        if target.exists() or target.is_symlink():
            continue
        atomic_write(target, data)
        result.added.append(rel)
    head = _git.branch_head(repo, main)
    tracked = _git.list_tree(repo, head) if head is not None else {}
    ignore_added = _ignore_the_store(repo, root, result) if ".gitignore" not in result.added else False
    # Commit what kfm added; on a repository with no commit yet, also the scaffold files that were already there.
    to_commit = sorted(rel for rel in wanted if (rel == ".gitignore" and ignore_added)
                       or (rel not in tracked and (root / rel).is_file() and (rel in result.added or head is None)))
    if to_commit:
        result.main_commit = str(_git.commit_index_paths(repo, main, to_commit, message))
        head = _git.branch_head(repo, main)
    assert head is not None
    main_files = _git.list_tree(repo, head)
    release = "release"
    shared = {rel: main_files[rel] for rel in SHARED if rel in main_files}
    rhead = _join_remote_release(repo, release, result)
    if rhead is None:
        result.release_commit = str(_git.commit_files(repo, release, shared, "kfm init: release branch", orphan=True))
    else:
        rfiles = _git.list_tree(repo, rhead)
        missing = {rel: data for rel, data in shared.items() if rel not in rfiles}
        for rel in shared:
            if rel in rfiles and rfiles[rel] != shared[rel]:
                result.notes.append(f"{rel} differs between main and release; make them identical in a PR")
        if missing:
            result.release_commit = str(_git.commit_files(repo, release, missing, "kfm init: shared files"))
    return result
