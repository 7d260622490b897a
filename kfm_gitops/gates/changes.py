"""What a pull request changes, and how the gates take it: `kfm gate run X --changed BASE..HEAD`.

Only the trees of BASE and HEAD are compared (never the history between them), and only what the changed paths
name is read. A change is sorted into:

- a new version (``releases/<slug>/<version>/promotion-manifest.json`` added): gated in full;
- a plan that no new version names: checked as a plan (`kfm plan validate`), the runbook's review before a run;
- rules (``policies/``, ``kfm.yaml``, a dataset's ``dataset.yaml`` or ``pipeline.yaml``): the policy tests run and
  the published version of each dataset concerned is gated again under the change; one that would stop passing
  fails the change;
- a release change (``releases/<slug>/published.yaml``, incident notes): gated by the release flow, which passes
  the hook that makes its release context; without it the change is refused (fail closed);
- an edit or a deletion of committed evidence (acquisition manifests, run folders, version folders, plans):
  refused by gate F, whatever else the change does;
- anything else is not governed; a change of nothing governed passes, saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kfm_gitops import _git
from kfm_gitops.config import CONFIG_NAME, Config
from kfm_gitops.errors import KfmError, UsageError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, ReleaseContext, verdict
from kfm_gitops.identity import VERSION_ID_RE
from kfm_gitops.store import Store
from kfm_gitops.versions import INCIDENTS_DIR, LEDGER_FILE, MANIFEST_FILE, PUBLISHED_FILE, RUNS_DIR

# Makes the release context of a release change: (config, base commit, head commit, slug) -> what the release adds.
ReleaseHook = Callable[[Config, str, str, str], ReleaseContext]

_PLAN = re.compile(r"plans/(?P<slug>[a-z0-9_]+)/[^/]+\.ya?ml")
_CONTRACT = re.compile(r"datasets/(?P<slug>[a-z0-9_]+)/(dataset|pipeline)\.yaml")
_RAW = re.compile(r"data/raw/(?P<slug>[a-z0-9_]+)/.+")
_RELEASES = re.compile(r"releases/(?P<slug>[a-z0-9_]+)/(?P<name>[^/]+)(/(?P<rest>.+))?")
APPEND_ONLY = "evidence is append-only: new files with new names, never edits or deletions"


@dataclass(slots=True)
class ChangeSet:
    """A change, sorted."""

    base: str
    head: str
    base_name: str = "BASE"  # how the user names the base (in hints)
    versions: list[tuple[str, str]] = field(default_factory=list)  # (slug, version id) added
    plans: list[str] = field(default_factory=list)  # repository paths of plans added or changed
    rules: list[str] = field(default_factory=list)  # policies, kfm.yaml, contracts changed
    rule_slugs: set[str] | None = field(default_factory=set)  # datasets the rules concern (None: every dataset)
    releases: list[str] = field(default_factory=list)  # datasets whose pointer or incidents changed
    evidence: int = 0  # paths of committed evidence the change touches
    altered: list[Finding] = field(default_factory=list)
    ungoverned: int = 0

    @property
    def governed(self) -> bool:
        return bool(self.versions or self.plans or self.rules or self.releases or self.evidence)


def parse_range(spec: str) -> tuple[str, str]:
    base, sep, head = spec.partition("..")
    if not sep or not base or not head or head.startswith("."):
        raise UsageError(f"--changed {spec!r} is not a range BASE..HEAD",
                         hint="name two commits, e.g. --changed origin/main..HEAD")
    return base, head


def classify(repo: _git.Repository, base: str, head: str, base_name: str = "BASE") -> ChangeSet:
    """Sort what HEAD's tree changes against BASE's."""
    return sort_changes(repo, base, _git.diff_paths(repo, base, head), lambda path: _git.read_blob(repo, head, path),
                        head, base_name)


def sort_changes(repo: _git.Repository, base: str, changes: Sequence[_git.Change],
                 read_new: Callable[[str], bytes | None], head: str = "", base_name: str = "BASE") -> ChangeSet:
    """Sort changes against a base commit; ``read_new`` reads a changed file as the change leaves it (from a
    commit, or from the index for what is staged)."""
    out = ChangeSet(base, head, base_name)
    for change in changes:
        path = change.path
        contract = _CONTRACT.fullmatch(path)
        released = _RELEASES.fullmatch(path)
        if path == CONFIG_NAME or path.startswith("policies/") or contract:
            out.rules.append(path)
            out.rule_slugs = None if out.rule_slugs is None or not contract else out.rule_slugs | {contract["slug"]}
        elif _PLAN.fullmatch(path):
            if change.status == "D":
                _altered(out, path, f"the change deletes the plan {path}")
            else:
                out.plans.append(path)
        elif _RAW.fullmatch(path):
            out.evidence += 1
            if change.status != "A":
                _altered(out, path, f"the change {_VERB[change.status]} {path}, committed evidence")
        elif released is not None and (released["rest"] is not None or released["name"] in (PUBLISHED_FILE,
                                                                                            LEDGER_FILE)):
            _release_path(repo, out, change, released, read_new)
        else:
            out.ungoverned += 1
    return out


_VERB = {"M": "edits", "D": "deletes", "T": "replaces", "A": "adds"}


def _altered(out: ChangeSet, path: str, message: str, added: bool = False) -> None:
    undo = "take it out of the change: new evidence goes into a new folder" if added else \
        f"restore it (`git checkout {out.base_name} -- {path}`)"
    out.altered.append(Finding("EVIDENCE_ALTERED", message, Location(path), hint=f"{APPEND_ONLY}: {undo}"))


def _release_path(repo: _git.Repository, out: ChangeSet, change: _git.Change, m: re.Match[str],
                  read_new: Callable[[str], bytes | None]) -> None:
    """A path below releases/<slug>/: a pointer or incident note (a release change), the ledger (append-only),
    a version's or a run's file (evidence: a new folder is new evidence, anything else alters it)."""
    slug, name, path = m["slug"], m["name"], change.path
    if name in (PUBLISHED_FILE, INCIDENTS_DIR):
        if slug not in out.releases:
            out.releases.append(slug)
        return
    out.evidence += 1
    if name == LEDGER_FILE:
        from kfm_gitops.ledger import append_only

        old = _git.read_blob(repo, out.base, path) or b""
        new = read_new(path) or b""
        out.altered += append_only(old, new, path)
        return
    rest = str(m["rest"])
    folder = f"releases/{slug}/{name}" + (f"/{rest.split('/', 1)[0]}" if name == RUNS_DIR else "")
    if change.status != "A":
        _altered(out, path, f"the change {_VERB.get(change.status, 'edits')} {path}, committed evidence")
    elif _git.is_folder(repo, out.base, folder):
        _altered(out, path, f"the change adds {path} to {folder}, committed evidence (a run or version folder is "
                 "written once)", added=True)
    elif name != RUNS_DIR and VERSION_ID_RE.fullmatch(name) and rest == MANIFEST_FILE:
        out.versions.append((slug, name))


@dataclass(frozen=True, slots=True)
class Part:
    """What one part of a change gave each gate: (evaluated, findings) by gate id."""

    subject: str
    by_gate: dict[str, tuple[tuple[str, ...], tuple[Finding, ...]]]


def gate_changes(config: Config, spec: str, store: Store | None, gates: Sequence[str],
                 release_hook: ReleaseHook | None = None) -> list[GateResult]:
    """The gates of a change: each gate's result over every part of it."""
    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="--changed compares two commits")
    base_rev, head_rev = parse_range(spec)
    base, head = (str(_resolve(repo, r)) for r in (base_rev, head_rev))
    if head != _git.head_commit(repo):
        raise UsageError(f"--changed reads HEAD's files from the working tree, which is not at {head_rev}",
                         hint=f"check out {head_rev} first (`git switch --detach {head_rev}`)")
    change = classify(repo, base, head, base_rev)
    parts = [*_versions(config, change, store, gates), *_plans(config, change, gates),
             *_rules(config, change, store, gates), *_releases(config, change, store, gates, release_hook)]
    if change.evidence or change.altered:
        parts.append(_evidence_part(change, gates))
    if not change.governed and not change.altered:
        note = (f"nothing governed changed ({change.ungoverned} path(s), none under plans/, datasets/, data/raw/, "
                "releases/, policies/ or kfm.yaml)")
        parts.append(Part(f"{base[:12]}..{head[:12]}", {g: ((note,), ()) for g in gates}))
    return [_combine(g, parts) for g in gates]


def _resolve(repo: _git.Repository, rev: str) -> _git.Oid:
    try:
        return _git.resolve(repo, rev)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"--changed: no commit {rev!r} in this repository",
                         hint="fetch the full history (actions/checkout with fetch-depth: 0)") from exc


def _combine(gate: str, parts: Sequence[Part]) -> GateResult:
    evaluated: list[str] = []
    findings: list[Finding] = []
    for part in parts:
        done, found = part.by_gate.get(gate, ((), ()))
        evaluated += [f"{part.subject}: {e}" for e in done]
        findings += found
    return verdict(gate, evaluated, findings)


def _from_results(subject: str, results: Sequence[GateResult]) -> Part:
    return Part(subject, {r.gate: (r.evaluated, r.findings) for r in results})


def _versions(config: Config, change: ChangeSet, store: Store | None, gates: Sequence[str]) -> list[Part]:
    from kfm_gitops.gates import run_gates
    from kfm_gitops.versions import version_dir

    return [_from_results(f"new version {slug} {vid}",
                          run_gates(config, version_dir(config, slug, vid), store, gates="".join(gates),
                                    commit=change.head))
            for slug, vid in change.versions]


def _plans(config: Config, change: ChangeSet, gates: Sequence[str]) -> list[Part]:
    """Plans no new version names: each checked as a plan (the same checks as `kfm plan validate`)."""
    from kfm_gitops.plan import check_plan
    from kfm_gitops.versions import read_version, version_dir

    named = set()
    for slug, vid in change.versions:
        version = read_version(version_dir(config, slug, vid))
        if not isinstance(version, list):
            named.add(version.plan)
    parts = []
    for rel in sorted(set(change.plans) - named):
        _, findings = check_plan(config.root / rel, config=config, shown=rel)
        done = ("checked as a plan (no version yet): schema, window, chunking, vocabulary, contract",)
        parts.append(Part(f"plan {rel}", {g: (done, tuple(findings)) for g in gates}))
    return parts


def _rules(config: Config, change: ChangeSet, store: Store | None, gates: Sequence[str]) -> list[Part]:
    """Rules changed: the policy tests, each changed contract, and every published version concerned, gated again
    under today's rules."""
    from kfm_gitops.dataset import list_slugs, load_contract
    from kfm_gitops.gates import run_gates
    from kfm_gitops.policy import test_policies
    from kfm_gitops.versions import published_version, release_head, version_dir

    if not change.rules:
        return []
    checked, findings = test_policies(config.root)
    repo = _git.discover(config.root)
    if repo is None or release_head(config, repo) is None:
        findings.append(Finding("RELEASE_BRANCH_MISSING", f"neither {config.release_branch} nor origin/"
                                f"{config.release_branch} is here: what is published cannot be gated again", None,
                                hint=f"fetch it (`git fetch origin {config.release_branch}`; in a workflow, "
                                "actions/checkout with fetch-depth: 0)"))
    slugs = sorted(change.rule_slugs) if change.rule_slugs is not None else list_slugs(config.root)
    for slug in sorted({m["slug"] for p in change.rules if (m := _CONTRACT.fullmatch(p))}):
        contract = load_contract(config.root, slug, config.vocab)
        findings += contract if isinstance(contract, list) else []
    done = (f"{', '.join(change.rules)}: {len(checked)} policy case(s) and the changed contracts checked",)
    parts = [Part("rules", {g: (done, tuple(findings)) for g in gates})]
    for slug in slugs:
        published = published_version(config, slug)
        if not published:
            parts.append(Part(f"dataset {slug}", {g: ((f"nothing published on {config.release_branch} to gate "
                                                       "again",), ()) for g in gates}))
            continue
        results = run_gates(config, version_dir(config, slug, published), store, gates="".join(gates),
                            commit=change.head)
        parts.append(_from_results(f"published version {slug} {published} under the change", results))
    return parts


def _releases(config: Config, change: ChangeSet, store: Store | None, gates: Sequence[str],
              hook: ReleaseHook | None) -> list[Part]:
    from kfm_gitops.gates import gate_release

    parts = []
    for slug in change.releases:
        if hook is None:
            refused = Finding("RELEASE_CHANGE", f"the change moves what {config.release_branch} publishes for {slug} "
                              f"(releases/{slug}/{PUBLISHED_FILE}): a release change, which these gates cannot "
                              "check alone", Location(f"releases/{slug}/{PUBLISHED_FILE}"),
                              hint="release PRs are gated by the release flow (`kfm release propose`, `kfm promote`)")
            parts.append(Part(f"release of {slug}", {g: (("a release change",), (refused,)) for g in gates}))
            continue
        results = gate_release(config, hook(config, change.base, change.head, slug), store, gates="".join(gates))
        parts.append(_from_results(f"release of {slug}", results))
    return parts


def _evidence_part(change: ChangeSet, gates: Sequence[str]) -> Part:
    """Gate F refuses a change that edits or deletes committed evidence, whatever else it does."""
    if "F" not in gates:
        return Part("evidence", {})
    done = (f"{change.evidence} evidence path(s) changed: "
            + ("none edits or deletes committed evidence" if not change.altered else
               f"{len(change.altered)} edit or delete committed evidence"),)
    return Part("evidence", {"F": (done, tuple(change.altered))})

