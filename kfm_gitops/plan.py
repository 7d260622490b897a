"""Backfill plans: the contract a contributor commits and a steward reviews before anything runs.

``check_plan`` validates one plan file: its YAML, its schema, the checks beyond the schema (explicit offsets, a
non-empty window, a bounded number of chunks, known vocabulary, reviewers other than the requester, a well-formed
expected id) and, inside a governed repository, the checks against the dataset's contract. ``chunks`` cuts the
window into chunks; ``new_plan`` writes a plan from the commented template.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kfm_gitops import _yaml, schema
from kfm_gitops._fs import atomic_write
from kfm_gitops.config import OBLIGATION_ALIASES, Config, Vocabularies
from kfm_gitops.findings import Finding
from kfm_gitops.identity import VERSION_PLACEHOLDER, IdentityError, parse_version_id
from kfm_gitops.periods import (
    COARSENESS,
    MAX_INSTANT,
    MIN_INSTANT,
    Mode,
    NaiveTimestamp,
    Period,
    PeriodError,
    get_zone,
    is_boundary,
    iso_exact,
    local_day,
    local_midnight_utc,
    next_start,
    parse_key,
    parse_timestamp,
    period_start,
    periods,
)
from kfm_gitops.versions import (
    FIRST_RELEASE,
    VersionManifest,
    carried_under_other_policy,
    list_versions,
    read_version,
    releases_of,
    repo_path,
    version_dir,
)

if TYPE_CHECKING:
    from kfm_gitops.dataset import Partitioning

MAX_CHUNKS = 10_000
MAX_PARALLELISM = 64


@dataclass(frozen=True, slots=True)
class Plan:
    path: Path
    doc: _yaml.Document
    slug: str
    start: datetime
    end: datetime
    mode: Mode
    timezone: str
    max_parallelism: int
    time_axis: str
    label: str
    obligations: tuple[dict[str, Any], ...]
    prior_version: str
    expected_version: str
    dry_run_first: bool

    def chunks(self) -> list[Period]:
        return periods(self.start, self.end, self.mode, get_zone(self.timezone))


def _get(data: Any, path: tuple[str | int, ...], kind: type | tuple[type, ...]) -> Any:
    """The value at ``path`` if it exists and has the type the check needs, else None.

    The checks beyond the schema also run on a plan that failed its schema, on whatever parts are usable,
    so that one run reports every error.
    """
    value = data
    for p in path:
        if isinstance(p, int):
            if not isinstance(value, list) or p >= len(value):
                return None
        elif not isinstance(value, dict) or p not in value:
            return None
        value = value[p]
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None


def _timestamp(doc: _yaml.Document, path: tuple[str | int, ...], out: list[Finding]) -> datetime | None:
    value = _get(doc.data, path, str)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except NaiveTimestamp:
        out.append(Finding("PLAN_TIMESTAMP_NAIVE", f"{value!r} has no UTC offset", doc.locate(path),
                           hint=f"write it with an explicit offset, e.g. {value[:10]}T00:00:00Z"))
    except PeriodError as exc:
        out.append(Finding("PLAN_TIMESTAMP", str(exc), doc.locate(path)))
    return None


def check_semantics(doc: _yaml.Document, vocab: Vocabularies) -> list[Finding]:
    """The checks beyond the schema, on every part of the plan that has the right shape."""
    out: list[Finding] = []
    _check_window(doc, out)
    _check_governance(doc, vocab, out)
    _check_ids(doc, out)
    return out


def _check_window(doc: _yaml.Document, out: list[Finding]) -> None:
    """The window, the missing intervals, the chunking and the parallelism."""
    d = doc.data
    start = _timestamp(doc, ("window", "start"), out)
    end = _timestamp(doc, ("window", "end"), out)
    for i in range(len(_get(d, ("references", "missing_intervals"), list) or [])):
        s = _timestamp(doc, ("references", "missing_intervals", i, "start"), out)
        e = _timestamp(doc, ("references", "missing_intervals", i, "end"), out)
        if s is not None and e is not None and s >= e:
            out.append(Finding("PLAN_INTERVAL_EMPTY", "missing interval ends before it starts",
                               doc.locate(("references", "missing_intervals", i))))
    tz_name = _get(d, ("chunking", "timezone"), str) or "UTC"
    mode = _get(d, ("chunking", "mode"), str)
    zone = None
    try:
        zone = get_zone(tz_name)
    except PeriodError as exc:
        out.append(Finding("PLAN_TIMEZONE", str(exc), doc.locate(("chunking", "timezone")),
                           hint="use an IANA name such as UTC or America/Chicago"))
    n_chunks = 0
    if start is not None and end is not None:
        if start >= end:
            out.append(Finding("PLAN_WINDOW_EMPTY",
                               f"window.start {iso_exact(start)} is not before window.end {iso_exact(end)}",
                               doc.locate(("window", "end")), hint="the window is half-open: [start, end)"))
        elif zone is not None and mode in COARSENESS:
            try:
                n_chunks = len(periods(start, end, cast(Mode, mode), zone, limit=MAX_CHUNKS))
            except PeriodError as exc:  # not expected inside the supported range; a finding if it ever is
                out.append(Finding("PLAN_TIMESTAMP", str(exc), doc.locate(("window",))))
            if n_chunks > MAX_CHUNKS:
                out.append(Finding("PLAN_TOO_MANY_CHUNKS",
                                   f"{mode} chunking of this window gives more than {MAX_CHUNKS} chunks",
                                   doc.locate(("chunking", "mode")),
                                   hint="choose a coarser chunking mode or split the backfill into several plans"))
    parallelism = _get(d, ("chunking", "max_parallelism"), int) or 1
    if parallelism > MAX_PARALLELISM:
        out.append(Finding("PLAN_PARALLELISM", f"max_parallelism {parallelism} is over the limit of {MAX_PARALLELISM}",
                           doc.locate(("chunking", "max_parallelism"))))
    elif 0 < n_chunks < parallelism:
        out.append(Finding("PLAN_PARALLELISM",
                           f"max_parallelism {parallelism} is more than the {n_chunks} chunk(s) of this plan",
                           doc.locate(("chunking", "max_parallelism")), severity="warning"))


def _check_governance(doc: _yaml.Document, vocab: Vocabularies, out: list[Finding]) -> None:
    """The time axis, the label and obligations, the reviewers and the terms snapshot."""
    from kfm_gitops.dataset import check_label

    d = doc.data
    axis = _get(d, ("time_axis",), str)
    if axis is not None and axis not in vocab.time_axes:
        out.append(Finding("PLAN_TIME_AXIS", f"time axis {axis!r} is not in the vocabulary",
                           doc.locate(("time_axis",)), hint=f"known axes: {', '.join(vocab.time_axes)}"))
    governance = _get(d, ("governance",), dict)
    if governance is not None and isinstance(governance.get("policy_label"), str):
        listed = governance.get("obligations")  # the schema reports a value that is not a list
        obligations = [o for o in (listed if isinstance(listed, list) else [])
                       if isinstance(o, dict) and isinstance(o.get("type"), str)]
        out.extend(check_label(doc, ("governance",), {"policy_label": governance["policy_label"],
                                                      "obligations": obligations}, vocab, label_key="policy_label"))
    reviewers = _get(d, ("reviewers",), list)
    requester = _get(d, ("requested_by",), str)
    if reviewers and requester is not None and all(r == requester for r in reviewers):
        out.append(Finding("PLAN_REVIEWERS", "the only reviewer is the requester",
                           doc.locate(("reviewers",)), hint="name a steward other than the requester"))
    terms = _get(d, ("governance", "upstream_terms_snapshot"), str)
    if terms is not None and terms.startswith(("http://", "https://")):
        from kfm_gitops._urls import url_problem  # only for a url: the hook's path stays light

        problem = url_problem(terms)
        if problem is not None:
            out.append(Finding("PLAN_TERMS_URL", problem, doc.locate(("governance", "upstream_terms_snapshot")),
                               hint="name the terms by a url without credentials, or commit a copy and name its "
                               "path"))


# The version ids a plan names: (where, what kfm leaves there until it knows better, finding code, hint).
_VERSION_FIELDS = (
    (("promotion", "expected_dataset_version_id"), VERSION_PLACEHOLDER, "PLAN_VERSION_ID",
     f"leave it as {VERSION_PLACEHOLDER!r}: the backfill's roll-up writes it"),
    (("rollback", "prior_dataset_version_id"), FIRST_RELEASE, "PLAN_PRIOR_VERSION",
     'name the version published now, or "" for a first release'),
)


def _check_ids(doc: _yaml.Document, out: list[Finding]) -> None:
    """The version ids and the expected outputs' partition keys."""
    d = doc.data
    for path, unset, code, hint in _VERSION_FIELDS:
        value = _get(d, path, str)
        if value is not None and value != unset:
            try:
                parse_version_id(value)
            except IdentityError as exc:
                out.append(Finding(code, str(exc), doc.locate(path), hint=hint))
    for i in range(len(_get(d, ("expected_outputs",), list) or [])):
        key = _get(d, ("expected_outputs", i, "partition"), str)
        if key is None:
            continue
        try:
            parse_key(key)
        except PeriodError as exc:
            out.append(Finding("PLAN_EXPECTED_OUTPUT", str(exc), doc.locate(("expected_outputs", i, "partition"))))


def build_plan(doc: _yaml.Document) -> Plan:
    """The Plan of a document that passed its schema and the checks beyond it."""
    d = doc.data
    chunking = d["chunking"]
    if not isinstance(d["governance"]["obligations"], list) or not all(
            isinstance(o, dict) and isinstance(o.get("type"), str) for o in d["governance"]["obligations"]):
        raise TypeError("obligations")
    for key in ("dataset_slug", "time_axis"):
        if not isinstance(d[key], str):
            raise TypeError(key)
    return Plan(
        path=Path(doc.path), doc=doc, slug=d["dataset_slug"], start=parse_timestamp(d["window"]["start"]),
        end=parse_timestamp(d["window"]["end"]), mode=chunking["mode"], timezone=chunking.get("timezone", "UTC"),
        max_parallelism=int(chunking.get("max_parallelism", 1)), time_axis=d["time_axis"],
        label=d["governance"]["policy_label"], obligations=tuple(d["governance"]["obligations"]),
        prior_version=d["rollback"]["prior_dataset_version_id"],
        expected_version=d["promotion"]["expected_dataset_version_id"],
        dry_run_first=bool(d["execution"].get("dry_run_first", False)),
    )


def _normalized(ob: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return OBLIGATION_ALIASES.get(ob["type"], ob["type"]), dict(ob.get("params", {}))


def _covers(plan_ob: dict[str, Any], contract_ob: dict[str, Any]) -> bool:
    """Does the plan's obligation keep (or tighten) the contract's?"""
    pt, pp = _normalized(plan_ob)
    ct, cp = _normalized(contract_ob)
    if pt != ct:
        return False
    if pp == cp:
        return True
    if ct == "remove_attributes":
        return set(cp.get("fields", [])) <= set(pp.get("fields", []))
    if ct == "min_count_threshold":
        return bool(pp.get("min_count", 0) >= cp.get("min_count", 0) and pp.get("group_by") == cp.get("group_by"))
    if ct == "generalize_geometry":
        pm, cm = str(pp.get("method", "")), str(cp.get("method", ""))
        if pm.startswith("round_") and cm.startswith("round_"):
            return int(pm.split("_")[1]) <= int(cm.split("_")[1])
    return False


def check_against_repository(plan: Plan, config: Config) -> list[Finding]:
    """The checks that need the dataset's contract and the repository (filesystem only: no git)."""
    from kfm_gitops.dataset import load_contract

    doc = plan.doc
    folder = plan.path.resolve().parent
    misplaced = []
    if folder.parent == (config.plans_dir()).resolve() and folder.name != plan.slug:
        misplaced = [Finding("PLAN_FOLDER_MISMATCH", f"a plan for {plan.slug!r} in plans/{folder.name}/",
                             doc.locate(("dataset_slug",)), hint=f"move it to plans/{plan.slug}/ or fix dataset_slug")]
    contract = load_contract(config.root, plan.slug, config.vocab)
    if isinstance(contract, list):
        if contract and contract[0].code == "DATASET_NOT_FOUND":
            return [*misplaced, Finding(
                "PLAN_UNKNOWN_DATASET", f"dataset {plan.slug!r} has no contract in this repository",
                doc.locate(("dataset_slug",)), hint=f"expected datasets/{plan.slug}/dataset.yaml; check the slug")]
        return [*misplaced, Finding(
            "PLAN_DATASET_INVALID", f"the contract of dataset {plan.slug!r} has {len(contract)} error(s)",
            doc.locate(("dataset_slug",)), hint=f"run `kfm dataset validate {plan.slug}`")]
    out: list[Finding] = list(misplaced)
    axes = contract.time_axes
    if plan.time_axis not in axes:
        out.append(Finding("PLAN_TIME_AXIS", f"dataset {plan.slug!r} does not map time axis {plan.time_axis!r}",
                           doc.locate(("time_axis",)), hint=f"it maps: {', '.join(axes)}"))
    part = contract.partitioning
    if plan.timezone != part.timezone:
        out.append(Finding("PLAN_TIMEZONE_MISMATCH",
                           f"chunking timezone {plan.timezone!r} differs from the partitioning's {part.timezone!r}",
                           doc.locate(("chunking", "timezone") if "timezone" in doc.data["chunking"]
                                      else ("chunking",), key=True),
                           hint=f"set chunking.timezone: {part.timezone}"))
    for m in misalignments(plan.start, plan.end, plan.mode, part):
        out.append(Finding(m.code, m.message, doc.locate(m.at), hint=m.hint))
    p_mode = part.mode
    zone = get_zone(part.timezone)
    for i, item in enumerate(doc.data.get("expected_outputs", [])):
        k_mode, _ = parse_key(item["partition"])
        if k_mode != p_mode:
            out.append(Finding("PLAN_EXPECTED_OUTPUT",
                               f"{item['partition']!r} is not a {p_mode} partition key",
                               doc.locate(("expected_outputs", i, "partition"))))
        else:
            from kfm_gitops.periods import period_of_key

            try:
                p = period_of_key(item["partition"], zone)
            except PeriodError:  # a period past the supported range cannot be inside the window
                p = None
            if p is None or p.start < plan.start or p.end > plan.end:
                out.append(Finding("PLAN_EXPECTED_OUTPUT", f"partition {item['partition']} is outside the window",
                                   doc.locate(("expected_outputs", i, "partition"))))
    vocab = config.vocab
    c_rank, p_rank = vocab.label_rank(contract.label), vocab.label_rank(plan.label)
    if c_rank is not None and p_rank is not None and p_rank < c_rank:
        out.append(Finding("PLAN_LABEL_LOOSENS",
                           f"policy_label {plan.label!r} is less restrictive than the dataset's {contract.label!r}",
                           doc.locate(("governance", "policy_label")),
                           hint="a plan may tighten the contract's label, never loosen it"))
    for ob in contract.obligations:
        if not any(_covers(p, ob) for p in plan.obligations):
            out.append(Finding("PLAN_OBLIGATION_DROPPED",
                               f"the dataset's obligation {ob['type']} {ob.get('params', {})} is missing from the plan",
                               doc.locate(("governance", "obligations")),
                               hint="copy the contract's obligations into the plan; a plan may only add to them"))
    out.extend(_inapplicable(doc, plan, contract.dataset.data))
    if plan.prior_version != FIRST_RELEASE:
        base = version_dir(config, plan.slug, plan.prior_version)
        if not base.is_dir():
            out.append(Finding("PLAN_PRIOR_VERSION",
                               f"prior version {plan.prior_version} does not exist under "
                               f"{repo_path(config, releases_of(config, plan.slug))}/",
                               doc.locate(("rollback", "prior_dataset_version_id")),
                               hint='name an existing version, or "" for a first release'))
        else:
            out.extend(_base_policy(doc, plan, base, contract.partitioning))
    elif plan.expected_version == VERSION_PLACEHOLDER and (
            others := _versions_of_other_plans(config, plan)):  # a plan not yet rolled up
        out.append(Finding("PLAN_PRIOR_VERSION",
                           f"this plan says first release, but versions of {plan.slug} made by other plans exist "
                           f"under {repo_path(config, config.releases_dir())}/ ({', '.join(others)})",
                           doc.locate(("rollback", "prior_dataset_version_id")), severity="warning",
                           hint="name the version published now as the base, or this backfill drops its partitions"))
    return out


def _base_policy(doc: _yaml.Document, plan: Plan, base: Path, partitioning: Partitioning) -> list[Finding]:
    """A version has one label: partitions carried from the base keep the label and obligations they were made
    under, so a plan that changes either must cover every partition of the base (the roll-up refuses otherwise)."""
    version = read_version(base)
    if not isinstance(version, VersionManifest):
        return []
    zone = get_zone(partitioning.timezone)
    inside = {p.key for p in periods(plan.start, plan.end, partitioning.mode, zone)}
    carried = carried_under_other_policy(version, plan.label, plan.obligations, inside)
    if not carried:
        return []
    return [Finding("PLAN_BASE_POLICY", f"the base version {base.name} was made under label "
                    f"{version.policy_label!r} and its obligations; this plan's label or obligations differ, so its "
                    f"partitions {', '.join(carried)} cannot be carried", doc.locate(("governance", "policy_label")),
                    hint="use the base's label and obligations (kfm plan new does), or widen the window to every "
                    "partition of the base")]


def _inapplicable(doc: _yaml.Document, plan: Plan, dataset: dict[str, Any]) -> list[Finding]:
    """Obligations the contract's data cannot take (a column it lacks, the id removed, a group of a removed
    column): found here, at their line, rather than when a chunk runs."""
    from kfm_gitops.policy import dataset_columns, normalized, obligation_problems

    terms = dataset_columns(dataset)
    out: list[Finding] = []
    seen: set[str] = set()
    for i, ob in enumerate(plan.obligations):
        for f in obligation_problems([normalized(ob)], *terms):
            seen.add(f.message)
            out.append(Finding("PLAN_OBLIGATION_INAPPLICABLE", f.message,
                               doc.locate(("governance", "obligations", i)), hint=f.hint))
    for f in obligation_problems([normalized(ob) for ob in plan.obligations], *terms):
        if f.message not in seen:
            out.append(Finding("PLAN_OBLIGATION_INAPPLICABLE", f.message, doc.locate(("governance", "obligations")),
                               hint=f.hint))
    return out


def _versions_of_other_plans(config: Config, plan: Plan) -> list[str]:
    """The versions of the plan's dataset that another plan made (a first-release plan's own version is no reason
    to warn it)."""
    import os

    mine = os.path.relpath(plan.path.resolve(), config.root.resolve()).replace(os.sep, "/")
    return [vid for vid, version in list_versions(config, plan.slug).items()
            if not isinstance(version, VersionManifest) or version.plan != mine]


def check_plan(path: Path, *, config: Config | None, shown: str | None = None) -> tuple[Plan | None, list[Finding]]:
    """Every finding for one plan file. ``config`` None means standalone (no repository checks)."""
    doc = _yaml.load(path, shown=shown)
    if isinstance(doc, list):
        return None, doc
    vocab = config.vocab if config is not None else Vocabularies()
    findings = schema.validate(doc, "plan") + check_semantics(doc, vocab)
    try:
        plan = build_plan(doc)
    except (KeyError, TypeError, ValueError, AttributeError, PeriodError):
        return None, findings  # the shape is wrong, and the findings above say where
    if config is not None:
        # Also on a plan with other errors, so that one run reports every error. A check that cannot run on a
        # malformed part adds nothing: that part already has its finding.
        try:
            findings.extend(check_against_repository(plan, config))
        except (KeyError, TypeError, ValueError, AttributeError, PeriodError):
            if not any(f.severity == "error" for f in findings):
                raise
    if any(f.severity == "error" for f in findings):
        return None, findings
    return plan, findings


def select_chunks(plan: Plan, keys: list[str] | None) -> list[Period]:
    """The plan's chunks, or those named; a key the plan does not have is a usage error."""
    from kfm_gitops.errors import UsageError

    chunks = plan.chunks()
    if not keys:
        return chunks
    unknown = sorted(set(keys) - {c.key for c in chunks})
    if unknown:
        raise UsageError(f"no chunk {', '.join(unknown)} in this plan",
                         hint=f"its chunks: {', '.join(c.key for c in chunks)}")
    return [c for c in chunks if c.key in keys]


def load_plan(path: Path, config: Config | None) -> Plan:
    """A plan that must be valid, for commands that act on it; raises with every finding otherwise."""
    from kfm_gitops.errors import FindingsError

    plan, findings = check_plan(path, config=config)
    if plan is None:
        raise FindingsError([f for f in findings if f.severity == "error"] or findings)
    return plan


# --- kfm plan new -------------------------------------------------------------------------------------------------

TEMPLATE = """\
# Backfill plan for {slug}. Review it in a pull request; `kfm plan validate {path}` checks it.
# Fields follow the pipeline backfill runbook. Timestamps need an explicit offset; the window is [start, end).
runbook: docs/runbooks/pipelines/rb-pipeline-backfill.md
dataset_slug: {slug}
reason: {reason}
requested_by: {requested_by}
# Stewards and engineers who review this plan; at least one other than the requester.
reviewers:{reviewers}

# The axis the window slices: event_time, valid_time (interval overlap) or transaction_time.
time_axis: {time_axis}
window:
  start: "{start}"
  end: "{end}"
chunking:
  mode: {mode}  # daily, weekly, monthly, quarterly or yearly; whole partitions of the dataset
  max_parallelism: {parallelism}
  timezone: {timezone}

governance:
  # The upstream licence or terms for this window (a URI or a repository path); snapshotted into RAW.
  upstream_terms_snapshot: {terms}
  policy_label: {label}
  # The dataset's obligations, plus any this backfill adds (generalize_geometry, remove_attributes, ...).
  obligations:{obligations}

execution:
  runner: kfm backfill run
  dry_run_first: true
  receipts_required: true  # never optional

promotion:
  # Written by the roll-up of `kfm backfill run`; leave the placeholder until then.
  expected_dataset_version_id: "{placeholder}"
  release_manifest_required: true  # never optional

rollback:
  strategy: repoint published to prior dataset_version_id
  # The version published when this plan was made; "" for a first release.
  prior_dataset_version_id: "{prior}"

# Optional: links that make review cheap.
references:
  incidents: []
  missing_intervals: []
"""


def _yaml_str(value: str) -> str:
    """A YAML 1.2 double-quoted scalar (JSON strings are valid YAML)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def _yaml_flow(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _as_written(t: datetime) -> str:
    """The timestamp as the template writes it: 'Z' for UTC, else its own offset; its fraction of a second kept."""
    return iso_exact(t) if t.utcoffset() == UTC.utcoffset(None) else t.isoformat()


def render_template(*, slug: str, path: str, reason: str, requested_by: str, reviewers: list[str], time_axis: str,
                    start: datetime, end: datetime, mode: str, parallelism: int, timezone: str, terms: str,
                    label: str, obligations: list[dict[str, Any]], prior: str) -> str:
    rev = "".join(f"\n  - {_yaml_str(r)}" for r in reviewers) if reviewers else " []  # TODO: name a steward"
    obs = "".join(f"\n    - {_yaml_flow(o)}" for o in obligations) if obligations else " []"
    return TEMPLATE.format(
        slug=slug, path=path, reason=_yaml_str(reason), requested_by=_yaml_str(requested_by), reviewers=rev,
        time_axis=time_axis, start=_as_written(start), end=_as_written(end), mode=mode,
        parallelism=parallelism, timezone=timezone, terms=_yaml_str(terms), label=label, obligations=obs,
        placeholder=VERSION_PLACEHOLDER, prior=prior,
    )


@dataclass(frozen=True, slots=True)
class Misalignment:
    """A window or chunking that does not cover whole partitions; ``at`` is the plan field."""

    code: str
    message: str
    at: tuple[str, ...]
    hint: str | None


def _bounds(t: datetime, part: Partitioning) -> tuple[datetime, datetime]:
    """The partition boundaries at or before ``t`` and after it."""
    zone = get_zone(part.timezone)
    first = period_start(local_day(t, zone), part.mode)
    return local_midnight_utc(first, zone), local_midnight_utc(next_start(first, part.mode), zone)


def misalignments(start: datetime, end: datetime, mode: Mode, part: Partitioning) -> list[Misalignment]:
    """Chunks must cover whole partitions: a chunking at least as coarse as the partitioning, and a window on
    partition boundaries (the partitioning's, whatever timezone the plan names)."""
    out: list[Misalignment] = []
    p_mode = part.mode
    zone = get_zone(part.timezone)
    if COARSENESS[mode] < COARSENESS[p_mode] or (mode == "weekly" and p_mode != "daily"):
        out.append(Misalignment("PLAN_CHUNKING_TOO_FINE", f"{mode} chunks do not cover whole {p_mode} partitions",
                                ("chunking", "mode"), f"use {p_mode} chunking or coarser"))
    zone = get_zone(part.timezone)
    for key, t in (("start", start), ("end", end)):
        if not is_boundary(t, p_mode, zone):
            usable = [iso_exact(b) for b in _bounds(t, part) if MIN_INSTANT <= b <= MAX_INSTANT]
            out.append(Misalignment("PLAN_WINDOW_NOT_ALIGNED", f"window.{key} {iso_exact(t)} is not on a {p_mode} "
                                    f"partition boundary in {part.timezone}", ("window", key),
                                    f"use {' or '.join(usable)}" if usable else None))
    return out


def aligned_window(start: datetime, end: datetime, part: Partitioning) -> str | None:
    """The smallest window on partition boundaries that holds [start, end), as --window takes it."""
    zone = get_zone(part.timezone)
    low = start if is_boundary(start, part.mode, zone) else _bounds(start, part)[0]
    high = end if is_boundary(end, part.mode, zone) else _bounds(end, part)[1]
    if not (MIN_INSTANT <= low < high <= MAX_INSTANT):
        return None
    return f"{iso_exact(low)}/{iso_exact(high)}"


@dataclass(frozen=True, slots=True)
class Draft:
    """A new plan, not yet written: where it goes, its text, and what the user should know."""

    path: Path
    text: str
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """What `kfm plan new` was asked for; None means the default."""

    slug: str
    window: str
    mode: Mode
    reason: str
    time_axis: str | None = None
    requested_by: str | None = None
    reviewers: tuple[str, ...] = ()
    max_parallelism: int | None = None
    prior: str | None = None
    terms: str | None = None


def draft_plan(config: Config, req: Request) -> Draft:
    """The plan `kfm plan new` writes, from the commented template; refused before anything is written when its
    window or chunking cannot run (each finding at the option, with the nearest window that can)."""
    import os

    from kfm_gitops.dataset import require_contract
    from kfm_gitops.errors import FindingsError
    from kfm_gitops.findings import Location
    from kfm_gitops.identity import check_slug
    from kfm_gitops.versions import default_base, inherited_policy

    check_slug(req.slug)
    start, end = parse_window(req.window)
    contract = require_contract(config.root, req.slug, config.vocab)
    part = contract.partitioning
    problems = misalignments(start, end, req.mode, part)
    if problems:
        nearest = aligned_window(start, end, part)
        raise FindingsError([Finding(m.code, m.message, Location(f"--{m.at[0]}"),
                                     hint=(f"the nearest window that covers whole partitions: --window {nearest}"
                                           if m.at[0] == "window" and nearest else m.hint)) for m in problems],
                            "refusing to write a plan whose chunks would not cover whole partitions: nothing written")
    parallelism = req.max_parallelism or min(2, max(1, len(periods(start, end, req.mode, get_zone(part.timezone),
                                                                   limit=2))))
    path = new_plan_path(config, req.slug)
    base, note = (req.prior, "") if req.prior is not None else default_base(config, req.slug)
    label, obligations, inherited = inherited_policy(config, req.slug, base, contract.label, contract.obligations)
    notes = [note] if note else []
    if inherited:
        notes.append(f"label {label!r} and obligations are the base version's, which differ from the contract's")
    text = render_template(
        slug=req.slug, path=os.path.relpath(path, config.root), reason=req.reason,
        requested_by=req.requested_by or _default_principal(config.root), reviewers=list(req.reviewers),
        time_axis=req.time_axis or part.axis, start=start, end=end, mode=req.mode, parallelism=parallelism,
        timezone=part.timezone, terms=req.terms or _default_terms(contract.pipeline.data), label=label,
        obligations=obligations, prior=base)
    return Draft(path, text, ("; ".join(notes),) if notes else ())


def _default_principal(root: Path) -> str:
    """Who requests a plan by default: git's user.email, else the login name."""
    import os

    from kfm_gitops import _git

    repo = _git.discover(root)
    email = _git.committer_email(repo) if repo is not None else None
    return email or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


def _default_terms(pipeline: dict[str, Any]) -> str:
    params = pipeline.get("connector", {}).get("params", {})
    terms = params.get("terms") if isinstance(params, dict) else None
    return str(terms) if terms else "TODO: the upstream licence or terms (URI or path)"


def parse_window(text: str) -> tuple[datetime, datetime]:
    """START/END, each an RFC 3339 timestamp with an explicit offset: a date alone is refused, since which
    timezone's midnight it means is exactly what a plan must say."""
    from kfm_gitops.errors import UsageError

    example = "e.g. --window 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z"
    if text.count("/") != 1:
        raise UsageError(f"--window {text!r} is not START/END", hint=example)
    out: list[datetime] = []
    for part in text.split("/"):
        part = part.strip()
        try:
            out.append(parse_timestamp(part))
        except NaiveTimestamp as exc:
            utc = f"{part}T00:00:00Z" if len(part) == 10 else f"{part}Z"
            raise UsageError(f"--window: {exc}: timestamps need an explicit offset",
                             hint=f"write {utc} for UTC, or the offset you mean, as in "
                             f"{utc[:-1]}-06:00") from exc
        except PeriodError as exc:
            raise UsageError(f"--window: {exc}", hint=example) from exc
    return out[0], out[1]


def new_plan_path(config: Config, slug: str, today: datetime | None = None) -> Path:
    day = (today or datetime.now(UTC)).strftime("%Y%m%d")
    return config.plans_dir() / slug / f"backfill-{day}-{secrets.token_hex(3)}.yml"


def write_new_plan(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"), exclusive=True)


def set_expected_version(path: Path, version_id: str) -> None:
    """Write the roll-up's version id into the plan: that value changes, every other byte stays."""
    parse_version_id(version_id)
    try:
        _yaml.replace_scalar(path, ("promotion", "expected_dataset_version_id"), version_id)
    except ValueError:  # not a plain scalar where expected: a round-trip edit still keeps comments and layout

        def mutate(doc: Any) -> None:
            doc["promotion"]["expected_dataset_version_id"] = version_id

        _yaml.edit(path, mutate)


__all__ = [
    "Plan",
    "check_plan",
    "load_plan",
    "new_plan_path",
    "parse_window",
    "render_template",
    "set_expected_version",
    "write_new_plan",
]
