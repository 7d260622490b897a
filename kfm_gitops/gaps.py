"""`kfm gaps SLUG`: the history missing from what is published, so that nobody has to find it by hand.

The version that ``published/<slug>`` shows is a map partition key -> artifact. Every partition period of the
dataset's partitioning (its mode, in its timezone) from the first published partition to the last must be there; a
period without a partition is missing (an upstream outage, a failed run: an empty chunk makes no partition). With
``until``, the periods after the last one are expected too, each once the contract's cadence has passed since it
ended. Missing periods next to each other are one interval. ``backfill_draft`` drafts the plan that fills them, the
way `kfm plan new` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from kfm_gitops import _git
from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError
from kfm_gitops.periods import Mode, Period, get_zone, iso_utc, local_midnight_utc, next_start, parse_key, periods

CADENCE_RE = re.compile(r"P(?:([0-9]+)Y)?(?:([0-9]+)M)?(?:([0-9]+)W)?(?:([0-9]+)D)?")
if TYPE_CHECKING:
    from kfm_gitops.plan import Draft

MAX_PERIODS = 100_000  # a bound on what --until may ask for (about 270 years of daily partitions)


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing partitions next to each other: the interval [start, end) in UTC and their keys."""

    start: datetime
    end: datetime
    partitions: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso_utc(self.start), "end": iso_utc(self.end), "partitions": list(self.partitions)}


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the published version covers, and the gaps in it."""

    slug: str
    version_id: str
    mode: Mode
    timezone: str
    cadence: str
    present: tuple[str, ...]  # the version's partition keys, sorted
    until: datetime | None
    gaps: tuple[Gap, ...]

    @property
    def missing(self) -> int:
        return sum(len(g.partitions) for g in self.gaps)

    def as_dict(self) -> dict[str, Any]:
        return {"dataset_slug": self.slug, "dataset_version_id": self.version_id,
                "partitioning": {"mode": self.mode, "timezone": self.timezone}, "cadence": self.cadence,
                "first": self.present[0], "last": self.present[-1], "partitions": len(self.present),
                "until": iso_utc(self.until) if self.until else None, "gaps": [g.as_dict() for g in self.gaps]}


def add_cadence(day: date, cadence: str) -> date:
    """The local day one cadence (an ISO 8601 duration of years, months, weeks and days) after ``day``."""
    from datetime import timedelta

    m = CADENCE_RE.fullmatch(cadence)
    if m is None or not any(m.groups()):
        raise KfmError(f"cadence {cadence!r} is not an ISO 8601 duration such as P1D or P1M")
    years, months, weeks, days = (int(g or 0) for g in m.groups())
    month = day.month - 1 + months
    year, month = day.year + years + month // 12, month % 12 + 1
    import calendar

    moved = date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    return moved + timedelta(weeks=weeks, days=days)


def _published(config: Config, slug: str) -> tuple[str, list[str]]:
    """The version the alias publishes and its partition keys, from its evidence commit."""
    from kfm_gitops.export import published
    from kfm_gitops.release import version_at

    repo = _git.discover(config.root)
    found = next((p for p in published(config, repo) if p.slug == slug), None) if repo is not None else None
    if repo is None or found is None:
        raise KfmError(f"nothing is published for {slug}: there is no coverage to compare",
                       hint="the first release is a backfill of the whole history: `kfm plan new`")
    version = version_at(config, repo, found.evidence_commit, slug, found.version_id)
    if version is None:
        raise KfmError(f"the evidence commit {found.evidence_commit[:12]} has no version {found.version_id}")
    return found.version_id, sorted(version[0].partition_keys)


def _expected(first: str, last: str, mode: Mode, timezone: str, cadence: str, until: datetime | None
              ) -> list[Period]:
    """The partition periods from ``first`` to ``last``, then (with ``until``) each later one whose cadence has
    passed since it ended."""
    zone = get_zone(timezone)
    start = local_midnight_utc(parse_key(first)[1], zone)
    last_day = parse_key(last)[1]
    end_day = next_start(last_day, mode)
    if until is not None:
        for _ in range(MAX_PERIODS):
            if local_midnight_utc(add_cadence(next_start(end_day, mode), cadence), zone) > until:
                break
            end_day = next_start(end_day, mode)
    grid = periods(start, local_midnight_utc(end_day, zone), mode, zone, limit=MAX_PERIODS, clip=False)
    if len(grid) > MAX_PERIODS:
        raise KfmError(f"more than {MAX_PERIODS} {mode} partitions to compare", hint="name an earlier --until")
    return grid


def coverage(config: Config, slug: str, *, until: datetime | None = None) -> Coverage:
    """The published version's partitions against the dataset's partitioning and cadence."""
    from kfm_gitops.dataset import require_contract
    from kfm_gitops.identity import check_slug

    check_slug(slug)
    contract = require_contract(config.root, slug, config.vocab)
    part, cadence = contract.partitioning, str(contract.dataset.data["cadence"])
    version_id, keys = _published(config, slug)
    odd = [k for k in keys if parse_key(k)[0] != part.mode]
    if odd:
        raise KfmError(f"{slug} {version_id} has partitions that are not {part.mode} ({', '.join(odd[:3])}): its "
                       "contract's partitioning changed since", hint="a contract change is published by a backfill "
                       "of the whole history under the new partitioning")
    present = set(keys)
    gaps: list[Gap] = []
    for p in _expected(keys[0], keys[-1], part.mode, part.timezone, cadence, until):
        if p.key in present:
            continue
        if gaps and gaps[-1].end == p.start:
            gaps[-1] = Gap(gaps[-1].start, p.end, (*gaps[-1].partitions, p.key))
        else:
            gaps.append(Gap(p.start, p.end, (p.key,)))
    return Coverage(slug, version_id, part.mode, part.timezone, cadence, tuple(keys), until, tuple(gaps))


def backfill_draft(config: Config, cov: Coverage, *, reason: str | None = None, reviewers: Sequence[str] = ()
                   ) -> Draft:
    """The plan that fills the gaps (a ``plan.Draft``, not yet written): one plan, built on the published version,
    whose window runs from the first gap's start to the last gap's end in chunks of one partition. Partitions
    present inside that window are run again; the draft's notes say how many."""
    from kfm_gitops.periods import iso_exact
    from kfm_gitops.plan import Draft, Request, draft_plan

    if not cov.gaps:
        raise KfmError(f"{cov.slug} {cov.version_id} has no gaps: there is nothing to backfill")
    start, end = cov.gaps[0].start, cov.gaps[-1].end
    inside = [k for k in cov.present if start <= local_midnight_utc(parse_key(k)[1], get_zone(cov.timezone)) < end]
    keys = [k for g in cov.gaps for k in g.partitions]
    why = reason or (f"Gap fill: {len(keys)} missing {cov.mode} partition{'s' if len(keys) != 1 else ''} "
                     f"({_span(keys)}) found by kfm gaps in {cov.version_id}")
    draft = draft_plan(config, Request(cov.slug, f"{iso_exact(start)}/{iso_exact(end)}", cov.mode, why,
                                       reviewers=tuple(reviewers), prior=cov.version_id))
    note = (f"one plan covers all {len(cov.gaps)} gaps: the {len(inside)} partition(s) present between them "
            f"({_span(inside)}) run again" if inside else f"one plan covers the {cov.missing} missing partition(s)")
    return Draft(draft.path, draft.text, (*draft.notes, note))


def _span(keys: Sequence[str]) -> str:
    if not keys:
        return "none"
    return keys[0] if len(keys) == 1 else f"{keys[0]} .. {keys[-1]}" if len(keys) > 2 else ", ".join(keys)
