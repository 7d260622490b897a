"""Benchmark the catalog step (build + validate of a version's DCAT, STAC and PROV) against the three validators
alone on the same files, at 100 and at 1,096 daily partitions; peak memory of each.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):
``kfm init --example`` makes a governed repository, whose contract is switched to daily partitioning. A version is
then synthesised with the library's own writers, without running the pipeline (which would take minutes for three
years of data and measure something else): for each day from 2021-01-01, a small RAW CSV object and a GeoParquet
artifact of 24 points (WKB, a ``geo`` key with its bounding box, the event_time column with statistics) land in the
store; each month is one chunk run, with its acquisition manifest and a receipt made by ``make_receipt`` (inputs: the
terms snapshot and the month's RAW objects; outputs: the acquisition and one artifact per day); the version folder
gets its promotion manifest (the id computed by ``dataset_version_id``), runs.json and the roll-up receipt; the plan
names a requester and a reviewer. 100 partitions is 2021-01-01 .. 2021-04-10 (4 chunks); 1,096 is 2021-01-01 ..
2023-12-31 plus 2024-01-01 (37 chunks).

Timed, each in a process of its own (the interpreter's start and the imports count for both sides), rounds
alternating:

1. kfm: ``build_catalogs`` + ``write_catalogs`` + ``validate_catalogs`` (the functions `kfm catalog build` and
   `kfm catalog validate` call): footers read from the store, the three catalogs written, then pystac's bundled STAC
   core schemas (compiled once with fastjsonschema; jsonschema only to word a failure) and the extension fields,
   pyshacl with kfm's DCAT profile, the prov package's read and the lineage rules, every link resolved (store,
   repository files, records) and the digests compared. Checked: no finding.
2. validators: on the files kfm wrote, pystac's ``validate_all_dict`` from the collection (core schemas bundled with
   pystac, the file and projection extension schemas from ``../shared/standards/stac-extensions/`` registered in
   its schema cache, a StacIO that refuses any http(s) read), pyshacl with kfm's DCAT profile (the JSON-LD parsed by
   rdflib, no inference; it must conform), and ``prov.model.ProvDocument.deserialize`` of prov.json.

Target: kfm's time at most 1.3 times the validators' (median of the rounds), peak RSS under 1 GiB. Peak memory is
``ru_maxrss`` of each tool's process (the wrapper of ``_common.wrapped``).

Run it from the repository root with::

    .venv/bin/python bench/catalog.py            # 100 and 1,096 partitions, 3 rounds each
    .venv/bin/python bench/catalog.py --quick    # 100 partitions, 1 round
    .venv/bin/python bench/catalog.py --rounds 5
"""

from __future__ import annotations

import json
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from _common import (
    KFM,
    SLUG,
    abort,
    init_example,
    options,
    parse,
    print_total,
    pyc_note,
    require_kfm,
    rounds_note,
    tool_env,
    verdict,
    wrapped,
)

SIZES = (100, 1096)
DEFAULT_ROUNDS, QUICK_ROUNDS = 3, 1
TARGET = 1.3
PEAK_LIMIT_MIB = 1024
FIRST_DAY = date(2021, 1, 1)
ROWS = 24
STANDARDS = Path(__file__).resolve().parents[1].parent / "shared" / "standards"
PLAN_REL = f"plans/{SLUG}/backfill-20240102-be4c11.yml"
PARAMS = "sha256:" + "1" * 64  # the synthetic runs' params digest


def frozen(repo: Path) -> Any:
    """The run context the synthetic receipts record (a commit of zeros: these runs ran from no commit)."""
    from kfm_gitops.config import Config
    from kfm_gitops.evidence import Frozen

    return Frozen(Config(repo), SLUG, PLAN_REL, "0" * 40, "bench-pipeline@example.org")

KFM_STEP = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from kfm_gitops.catalog import build_catalogs, validate_catalogs, write_catalogs\n"
    "from kfm_gitops.store import Store\n"
    "root, folder = Path(sys.argv[1]), Path(sys.argv[2])\n"
    "store = Store(str(root / '.kfm' / 'objects'))\n"
    "files = build_catalogs(root, folder, store)\n"
    "write_catalogs(folder, files)\n"
    "check = validate_catalogs(root, folder, store)\n"
    "print(json.dumps({'ok': check.ok, 'files': len(files), 'links': len(check.links),\n"
    "                  'findings': [f.text() for f in check.findings[:5]]}))\n"
)
VALIDATORS = (
    "import json, sys, time\n"
    "from pathlib import Path\n"
    "folder, standards = Path(sys.argv[1]) / 'catalog', Path(sys.argv[2])\n"
    "times = {}\n"
    "t = time.perf_counter()\n"
    "import pystac\n"
    "from pystac.validation import JsonSchemaSTACValidator, set_validator, validate_all_dict\n"
    "class Offline(pystac.StacIO):\n"
    "    def read_text(self, source, *args, **kwargs):\n"
    "        if str(source).startswith(('http://', 'https://')):\n"
    "            raise RuntimeError(f'offline: {source}')\n"
    "        return Path(str(source)).read_text(encoding='utf-8')\n"
    "    def write_text(self, dest, txt, *args, **kwargs):\n"
    "        raise RuntimeError('read only')\n"
    "pystac.StacIO.set_default(Offline)\n"
    "validator = JsonSchemaSTACValidator()\n"
    "for name in ('file-v2.1.0.json', 'projection-v2.0.0.json'):\n"
    "    schema = json.loads((standards / 'stac-extensions' / name).read_text())\n"
    "    validator.schema_cache[schema['$id'].rstrip('#')] = schema\n"
    "set_validator(validator)\n"
    "collection = folder / 'stac' / 'collection.json'\n"
    "validate_all_dict(json.loads(collection.read_text()), str(collection))\n"
    "times['pystac validate_all'] = time.perf_counter() - t\n"
    "t = time.perf_counter()\n"
    "from importlib.resources import files\n"
    "import pyshacl, rdflib\n"
    "shapes = rdflib.Graph().parse(data=files('kfm_gitops.catalog').joinpath('dcat-profile.ttl').read_text(),\n"
    "                              format='turtle')\n"
    "graph = rdflib.Graph().parse(data=(folder / 'dcat.jsonld').read_text(), format='json-ld')\n"
    "conforms, _, text = pyshacl.validate(graph, shacl_graph=shapes, inference='none')\n"
    "assert conforms, text\n"
    "times['pyshacl (kfm profile)'] = time.perf_counter() - t\n"
    "t = time.perf_counter()\n"
    "import prov.model\n"
    "doc = prov.model.ProvDocument.deserialize(content=(folder / 'prov.json').read_text(), format='json')\n"
    "times['prov load'] = time.perf_counter() - t\n"
    "print(json.dumps({'times': times, 'records': len(doc.records)}))\n"
)


# Synthesising a version.

def artifact(path: Path, day: date, rng: random.Random) -> None:
    """A small GeoParquet 1.1 file: points in Kansas, times through the day, the geo key with its bbox."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    xs = [round(rng.uniform(-102.0, -94.7), 4) for _ in range(ROWS)]
    ys = [round(rng.uniform(37.0, 40.0), 4) for _ in range(ROWS)]
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    times = sorted(start + timedelta(seconds=rng.randrange(86400)) for _ in range(ROWS))
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {
        "encoding": "WKB", "geometry_types": ["Point"], "bbox": [min(xs), min(ys), max(xs), max(ys)]}}}
    table = pa.table({
        "report_id": [f"KS-{day:%Y%m%d}-{i:04d}" for i in range(ROWS)],
        "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "geometry": pa.array([struct.pack("<BIdd", 1, 1, x, y) for x, y in zip(xs, ys, strict=True)], pa.binary()),
    }).replace_schema_metadata({"geo": json.dumps(geo)})
    pq.write_table(table, str(path), compression="zstd")


def month_runs(days: list[date]) -> dict[str, list[date]]:
    out: dict[str, list[date]] = {}
    for day in days:
        out.setdefault(f"{day:%Y-%m}", []).append(day)
    return out


def chunk_run(repo: Path, store: Any, key: str, days: list[date], terms: str, started: datetime, rng: random.Random
              ) -> tuple[str, str, str, list[dict[str, Any]]]:
    """One month: RAW objects, artifacts, the acquisition manifest and the receipt; (run id, receipt path, receipt
    digest, partitions)."""
    from kfm_gitops.evidence import build_receipt
    from kfm_gitops.identity import acquisition_id, sha256_digest
    from kfm_gitops.periods import Period
    from kfm_gitops.versions import run_folder_name

    raw = {d: store.put_bytes(f"report_id,event_time\nKS-{d:%Y%m%d},{d}T00:00:00Z\n".encode()).digest for d in days}
    made = {}
    for d in days:
        path = repo / ".kfm" / "bench.parquet"
        artifact(path, d, rng)
        made[d] = store.put_file(path).digest
    objects = [{"name": f"{d:%Y-%m}/{d}.csv", "digest": raw[d], "media_type": "text/csv", "size": 40,
                "source_uri": f"upstream/{SLUG}/{d:%Y-%m}/{d}.csv"} for d in days]
    acq_id = acquisition_id(key, raw.values(), {"connector": "file"})
    acq_rel = f"data/raw/{SLUG}/{acq_id}.json"
    acq_bytes = (json.dumps({"acquisition_id": acq_id, "objects": objects, "terms": {"digest": terms}},
                            indent=2, sort_keys=True) + "\n").encode()
    (repo / acq_rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / acq_rel).write_bytes(acq_bytes)
    rid = f"kfm://run/{started:%Y%m%dT%H%M%SZ}.{key}.{rng.getrandbits(32):08x}"
    receipt = build_receipt(
        frozen(repo), rid, "process", PARAMS,
        inputs=[{"uri": f"upstream/{SLUG}/TERMS.txt", "digest": terms, "role": "terms"},
                *({"uri": o["source_uri"], "digest": o["digest"]} for o in objects)],
        outputs=[{"uri": acq_rel, "digest": sha256_digest(acq_bytes), "role": "acquisition"},
                 *({"uri": f"kfm://artifact/{made[d]}", "digest": made[d], "role": f"partition:{d}"} for d in days)],
        chunk=Period(key, "monthly", datetime.combine(days[0], clock_time(), UTC),
                     datetime.combine(days[-1] + timedelta(days=1), clock_time(), UTC)),
        decision_id="kfm://policy_decision/0123456789abcdef", created_at=started + timedelta(seconds=30))
    folder = repo / "releases" / SLUG / "runs" / run_folder_name(rid)
    folder.mkdir(parents=True)
    (folder / "receipt.json").write_bytes(receipt.bytes)
    chunk_raw = sorted(raw.values())  # as the roll-up records it: every partition of a chunk, the chunk's RAW
    parts = [{"partition": str(d), "processed": made[d], "raw": chunk_raw} for d in days]
    return rid, f"releases/{SLUG}/runs/{run_folder_name(rid)}/receipt.json", receipt.digest, parts


def daily_contract(repo: Path) -> str:
    """Switch the example's contract to daily partitions; its spec_hash."""
    from kfm_gitops import _yaml
    from kfm_gitops.identity import spec_hash

    path = repo / "datasets" / SLUG / "dataset.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("mode: monthly", "mode: daily"), encoding="utf-8")
    docs = [_yaml.load(repo / "datasets" / SLUG / name) for name in ("dataset.yaml", "pipeline.yaml")]
    if not all(isinstance(d, _yaml.Document) for d in docs):
        abort("the example's contract does not load")
    return spec_hash(docs[0].data, docs[1].data)  # type: ignore[union-attr]


def pretty(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def synthesise(repo: Path, n: int) -> Path:
    """A version of ``n`` daily partitions (see the module's docstring); its folder."""
    from kfm_gitops.evidence import build_receipt
    from kfm_gitops.identity import PartitionContent, dataset_version_id, sha256_digest
    from kfm_gitops.store import Store

    spec = daily_contract(repo)
    store = Store(str(repo / ".kfm" / "objects"))
    rng = random.Random(n)
    terms = store.put_bytes(b"Bench terms: CC BY 4.0\n").digest
    (repo / PLAN_REL).write_text(f'dataset_slug: {SLUG}\nrequested_by: "bench-requester"\n'
                                 'reviewers: ["bench-steward"]\n', encoding="utf-8")
    clock = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    runs, parts = [], []
    for i, (key, days) in enumerate(month_runs([FIRST_DAY + timedelta(days=k) for k in range(n)]).items()):
        rid, receipt, digest, made = chunk_run(repo, store, key, days, terms, clock + timedelta(minutes=i), rng)
        runs.append({"chunk": key, "run_id": rid, "receipt": receipt, "digest": digest})
        parts += made
    version = dataset_version_id(spec, [PartitionContent(p["partition"], p["processed"], tuple(p["raw"]))
                                        for p in parts])
    folder = repo / "releases" / SLUG / version
    folder.mkdir(parents=True)
    media = "application/vnd.apache.parquet"
    artifacts = [{"path": f"processed/{SLUG}/{p['partition']}.parquet", "digest": p["processed"],
                  "media_type": media} for p in parts]
    runs_bytes = pretty({"kfm_runs_version": "v1", "dataset_slug": SLUG, "dataset_version_id": version,
                         "base_dataset_version_id": None, "runs": runs, "carried": []})
    manifest = pretty({"kfm_promotion_manifest_version": "v1", "dataset_slug": SLUG, "dataset_version_id": version,
                       "spec_hash": spec, "base_dataset_version_id": None, "partitions": parts,
                       "artifacts": artifacts, "catalogs": [], "plan": PLAN_REL,
                       "policy": {"policy_label": "public", "decision_id": "kfm://policy_decision/0123456789abcdef",
                                  "obligations": []}})
    (folder / "runs.json").write_bytes(runs_bytes)
    (folder / "promotion-manifest.json").write_bytes(manifest)
    rid = f"kfm://run/{clock + timedelta(hours=1):%Y%m%dT%H%M%SZ}.{parts[-1]['partition']}.0badc0de"
    rollup = build_receipt(frozen(repo), rid, "rollup", PARAMS,
                           inputs=[{"uri": r["receipt"], "digest": r["digest"]} for r in runs],
                           outputs=[{"uri": "promotion-manifest.json", "digest": sha256_digest(manifest)},
                                    {"uri": "runs.json", "digest": sha256_digest(runs_bytes)}],
                           dataset_version_id=version, created_at=clock + timedelta(hours=1, seconds=5))
    (folder / "receipt.json").write_bytes(rollup.bytes)
    return folder


# Running and reporting.

def kfm_round(repo: Path, folder: Path, env: dict[str, str], tmp: Path) -> tuple[float, float]:
    elapsed, usage, done = wrapped([sys.executable, "-c", KFM_STEP, str(repo), str(folder)], repo, env, tmp)
    check_ok(done, "kfm build + validate")
    report = json.loads(done.stdout)
    if not report["ok"]:
        abort(f"kfm catalog validate found {report['findings']}", done)
    return elapsed, usage["maxrss_kib"] / 1024


def validators_round(repo: Path, folder: Path, env: dict[str, str], tmp: Path
                     ) -> tuple[float, float, dict[str, float]]:
    command = [sys.executable, "-c", VALIDATORS, str(folder), str(STANDARDS)]
    elapsed, usage, done = wrapped(command, repo, env, tmp)
    check_ok(done, "the validators")
    return elapsed, usage["maxrss_kib"] / 1024, json.loads(done.stdout)["times"]


def check_ok(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        abort(f"{what} failed", done)


def measure(tmp: Path, env: dict[str, str], n: int, rounds: int) -> dict[str, Any]:
    repo = init_example(tmp, env, f"repo-{n}")
    t0 = time.perf_counter()
    folder = synthesise(repo, n)
    print(f"\n{n} daily partitions: version {folder.name}, synthesised in {time.perf_counter() - t0:.1f} s")
    kfm_round(repo, folder, env, tmp)  # untimed warm-up: bytecode, page cache, and the files the validators read
    validators_round(repo, folder, env, tmp)
    kfm_s, val_s, kfm_peak, val_peak = [], [], [], []
    parts: dict[str, list[float]] = {}
    for _ in range(rounds):
        elapsed, peak = kfm_round(repo, folder, env, tmp)
        kfm_s.append(elapsed)
        kfm_peak.append(peak)
        elapsed, peak, times = validators_round(repo, folder, env, tmp)
        val_s.append(elapsed)
        val_peak.append(peak)
        for name, seconds in times.items():
            parts.setdefault(name, []).append(seconds)
    return {"n": n, "kfm": kfm_s, "validators": val_s, "kfm_peak": max(kfm_peak), "validators_peak": max(val_peak),
            "parts": {k: statistics.median(v) for k, v in parts.items()},
            "bytes": {p.relative_to(folder).as_posix(): p.stat().st_size for p in (folder / "catalog").rglob("*")
                      if p.is_file() and "items" not in p.parts}}


def report(m: dict[str, Any]) -> bool:
    kfm_s, val_s = statistics.median(m["kfm"]), statistics.median(m["validators"])
    ratio = float(kfm_s / val_s)
    print(f"  {'process':<34} {'median s':>9} {'peak MiB':>9}   all rounds (s)")
    print(f"  {'kfm build + write + validate':<34} {kfm_s:>9.3f} {m['kfm_peak']:>9.0f}   "
          + " ".join(f"{s:.3f}" for s in m["kfm"]))
    print(f"  {'validators alone':<34} {val_s:>9.3f} {m['validators_peak']:>9.0f}   "
          + " ".join(f"{s:.3f}" for s in m["validators"]))
    for name, seconds in m["parts"].items():
        print(f"    {name:<32} {seconds:>9.3f}")
    print("  sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sorted(m["bytes"].items())))
    peak = max(m["kfm_peak"], m["validators_peak"])
    print(f"ratio kfm/validators ({m['n']} partitions): {ratio:.2f} (target <= {TARGET}) {verdict(ratio <= TARGET)}; "
          f"peak RSS of kfm {m['kfm_peak']:.0f} MiB (limit {PEAK_LIMIT_MIB}) {verdict(peak < PEAK_LIMIT_MIB)}")
    return ratio <= TARGET


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(__doc__, rounds_help=f"timed rounds per size (default {DEFAULT_ROUNDS})",
                     quick_help=f"smoke run: {SIZES[0]} partitions, {QUICK_ROUNDS} round")
    args = parse(parser, argv)
    sizes, rounds = (SIZES[:1], QUICK_ROUNDS) if args.quick else (SIZES, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds
    require_kfm()
    if not (STANDARDS / "stac-extensions").is_dir():
        sys.exit(f"abort: {STANDARDS}/stac-extensions not found (pystac's baseline validates the extensions with it)")
    began = time.perf_counter()
    print(f"python {sys.version.split()[0]}; kfm {KFM}; {rounds_note(rounds)}")
    with tempfile.TemporaryDirectory(prefix="kfm-bench-catalog-") as tmp_name:
        tmp = Path(tmp_name)
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        print(pyc_note(args.no_pyc_cache))
        for n in sizes:
            report(measure(tmp, env, n, rounds))
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
