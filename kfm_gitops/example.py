"""The example dataset: Kansas storm reports with a deterministic generator of its upstream files.

The upstream delivers weekly CSV batches per month from January to June 2023, except March, lost in an outage.
March is redelivered later (``upstream/ks_storm_reports-redelivery/``) with a batch of bad records: wrong types,
invalid and out-of-extent geometries, an out-of-window time, a naive timestamp, a duplicate id and an over-precise
point. The first release has a gap; the backfill fills it and quarantines the bad records.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from importlib import resources

SLUG = "ks_storm_reports"
MONTHS = ("2023-01", "2023-02", "2023-03", "2023-04", "2023-05", "2023-06")
OUTAGE_MONTH = "2023-03"
UPSTREAM = f"upstream/{SLUG}"
REDELIVERY = f"upstream/{SLUG}-redelivery"
FIRST_PLAN = f"plans/{SLUG}/backfill-20230705-0c1d2e.yml"
HEADER = "report_id,event_time,county,event_type,magnitude,injuries,source,longitude,latitude"

# Approximate county centres (lon, lat).
COUNTIES: tuple[tuple[str, float, float], ...] = (
    ("Sedgwick", -97.46, 37.68), ("Johnson", -94.82, 38.88), ("Shawnee", -95.75, 39.04),
    ("Douglas", -95.29, 38.88), ("Wyandotte", -94.76, 39.11), ("Riley", -96.73, 39.30),
    ("Saline", -97.65, 38.78), ("Reno", -98.08, 37.95), ("Finney", -100.74, 38.04),
    ("Ford", -99.89, 37.69), ("Ellis", -99.32, 38.91), ("Butler", -96.84, 37.78),
    ("Barton", -98.76, 38.48), ("Thomas", -101.08, 39.35), ("Cowley", -96.84, 37.24),
    ("Crawford", -94.85, 37.51), ("Seward", -100.85, 37.19), ("Pratt", -98.74, 37.65),
)
SOURCES = ("spotter", "law_enforcement", "public", "emergency_manager")
ROWS_PER_BATCH = 30

TERMS = """\
Kansas Frontier Matrix example upstream: terms of use

The storm reports published by this upstream are licensed under the Creative Commons Attribution 4.0
International licence (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/).
Attribution: "Storm reports: Kansas Frontier Matrix example upstream, CC BY 4.0".
The reports are synthetic and made for demonstrating governed backfills.
"""


def _event(rng: random.Random) -> tuple[str, str, str]:
    kind = rng.choice(("hail", "hail", "wind", "wind", "tornado"))
    if kind == "hail":
        magnitude = f"{rng.choice((0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.75)):.2f}"
    elif kind == "wind":
        magnitude = f"{rng.randint(58, 90)}"
    else:
        magnitude = f"{rng.randint(0, 3)}" if rng.random() > 0.15 else ""
    injuries = "" if rng.random() < 0.3 else str(rng.choice((0, 0, 0, 0, 1, 2)))
    return kind, magnitude, injuries


def _batch_starts(month: str) -> list[date]:
    y, m = (int(x) for x in month.split("-"))
    return [date(y, m, d) for d in (1, 8, 15, 22)]


def _month_end(month: str) -> date:
    y, m = (int(x) for x in month.split("-"))
    return date(y + (m // 12), m % 12 + 1, 1)


def month_rows(month: str) -> dict[str, list[str]]:
    """The good CSV rows of one month's batches: file name -> rows (without header)."""
    rng = random.Random(f"{SLUG}:{month}")
    starts = _batch_starts(month)
    out: dict[str, list[str]] = {}
    n = 0
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else _month_end(month)
        seconds = int((end - start).total_seconds()) if isinstance(end - start, timedelta) else 0
        times = sorted(rng.randrange(seconds) for _ in range(ROWS_PER_BATCH))
        rows: list[str] = []
        for t in times:
            n += 1
            when = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(seconds=t)
            county, lon, lat = rng.choice(COUNTIES)
            kind, magnitude, injuries = _event(rng)
            # Jitter around the county centre, kept inside the state's extent.
            x = min(max(round(lon + rng.uniform(-0.2, 0.2), 4), -102.0), -94.62)
            y = min(max(round(lat + rng.uniform(-0.2, 0.2), 4), 37.0), 40.0)
            rows.append(",".join((
                f"KS-{month.replace('-', '')}-{n:04d}", when.strftime("%Y-%m-%dT%H:%M:%SZ"), county, kind,
                magnitude, injuries, rng.choice(SOURCES), f"{x:.4f}", f"{y:.4f}",
            )))
        out[f"reports-{start.isoformat()}.csv"] = rows
    return out


def bad_rows(month: str) -> list[str]:
    """The bad batch appended to the redelivered month: each row fails for one known reason."""
    stem = month.replace("-", "")
    return [
        f"KS-{stem}-9001,{month}-29T13:05:00Z,Reno,hail,heavy,0,spotter,-98.0812,37.9521",  # SCHEMA_INVALID
        f"KS-{stem}-9002,{month}-29T13:20:00Z,Reno,wind,61,two,spotter,-98.1012,37.9012",  # SCHEMA_INVALID
        f"KS-{stem}-9003,{month}-29T14:00:00Z,Ford,hail,1.00,0,public,,37.6911",  # GEOMETRY_INVALID
        f"KS-{stem}-9004,{month}-29T14:30:00Z,Ford,wind,70,0,public,999.0000,37.6911",  # GEOMETRY_INVALID
        f"KS-{stem}-9005,{month}-29T15:00:00Z,Jasper,hail,1.50,0,public,-94.3100,37.1700",  # OUT_OF_EXTENT (Missouri)
        f"KS-{stem}-9006,2023-02-27T12:00:00Z,Pratt,wind,65,0,spotter,-98.7400,37.6500",  # OUT_OF_WINDOW
        f"KS-{stem}-9007,{month}-30 14:00:00,Pratt,hail,1.00,0,spotter,-98.7400,37.6500",  # SCHEMA_INVALID (naive)
        f"KS-{stem}-0001,{month}-30T15:00:00Z,Barton,wind,60,0,spotter,-98.7600,38.4800",  # DUPLICATE_ID
        f"KS-{stem}-9009,{month}-30T16:00:00Z,Ellis,hail,1.25,0,spotter,-99.321234567,38.9112",  # GEOMETRY_OVERPRECISE
    ]


def upstream_files(*, redelivery: bool = True) -> dict[str, bytes]:
    """Repository-relative path -> bytes of every upstream file."""
    files: dict[str, bytes] = {f"{UPSTREAM}/TERMS.txt": TERMS.encode()}
    for month in MONTHS:
        batches = month_rows(month)
        if month == OUTAGE_MONTH:
            if not redelivery:
                continue
            last = sorted(batches)[-1]
            batches[last] = batches[last] + bad_rows(month)
            base = f"{REDELIVERY}/{month}"
        else:
            base = f"{UPSTREAM}/{month}"
        for name, rows in sorted(batches.items()):
            files[f"{base}/{name}"] = ("\n".join((HEADER, *rows)) + "\n").encode()
    return files


def contract_files() -> dict[str, bytes]:
    pkg = resources.files("kfm_gitops").joinpath("examples", SLUG)
    return {f"datasets/{SLUG}/{name}": pkg.joinpath(name).read_bytes() for name in ("dataset.yaml", "pipeline.yaml")}


def first_plan_text() -> str:
    from kfm_gitops.plan import render_template

    return render_template(
        slug=SLUG, path=FIRST_PLAN, reason="First release of the storm reports, January to June 2023",
        requested_by="ops-ana", reviewers=["steward-kim"], time_axis="event_time",
        start=datetime(2023, 1, 1, tzinfo=UTC), end=datetime(2023, 7, 1, tzinfo=UTC), mode="monthly",
        parallelism=2, timezone="UTC", terms=f"{UPSTREAM}/TERMS.txt", label="public",
        obligations=[{"type": "require_attribution",
                      "params": {"text": "Storm reports: Kansas Frontier Matrix example upstream, CC BY 4.0"}}],
        prior="",
    )


# The example's people: who holds which role in its kfm.yaml (principals of reviews and Approved-by trailers).
STEWARD = "steward-kim"
RELEASE_MANAGER = "rm-lee"


def config_text() -> str:
    """kfm.yaml as kfm init writes it, with the example's stewards and release managers."""
    from kfm_gitops.repository import KFM_YAML

    blank = "roles:\n  steward: []\n  release_manager: []\n"
    assert blank in KFM_YAML
    return KFM_YAML.replace(blank, f"roles:\n  steward: [{STEWARD}]\n  release_manager: [{RELEASE_MANAGER}]\n")


def repository_files(*, redelivery: bool = True) -> dict[str, bytes]:
    """Everything the example adds to a governed repository (its kfm.yaml names the example's people)."""
    from kfm_gitops.config import CONFIG_NAME

    return {CONFIG_NAME: config_text().encode(), **contract_files(), FIRST_PLAN: first_plan_text().encode(),
            **upstream_files(redelivery=redelivery)}
