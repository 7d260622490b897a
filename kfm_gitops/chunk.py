"""One chunk through WORK to PROCESSED: RAW objects in; normalised, checked rows out as GeoParquet partitions in
the store; failures in QUARANTINE with a reason each; a QA report and a quarantine record for the run folder.

``process_chunk`` is the library entry point; `kfm process PLAN --chunk KEY` runs it from the command line, and the
backfill run runs it for every chunk. It reads as a list of steps: refuse early (policy, obligations, CRS), read
every object batch by batch (``_ChunkRun.read_object``), settle what only the whole chunk shows (duplicates, small
groups), then report and store.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfm_gitops.dataset import Contract
from kfm_gitops.findings import Finding, Location
from kfm_gitops.materialize import MEDIA_TYPE, PartitionWriter, drop_rows, store_artifact
from kfm_gitops.normalize import OK, Normalized, Normalizer, mark
from kfm_gitops.periods import Period
from kfm_gitops.qa import QA, partition_start_column, window_mask
from kfm_gitops.sources import FEATURE_ID, SourceError, read_batches
from kfm_gitops.store import Store

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from kfm_gitops.obligations import Obligations

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_TIME = -(2**63)  # a row without a partition instant
QUARANTINE_LISTED = 1000  # records listed in quarantine.json; all of them are in the store object
DUPLICATE_DETAIL = "an earlier row has the same id"
# Findings that keep a whole chunk out of PROCESSED.
WHOLE_CHUNK_CODES = ("SOURCE_UNREADABLE", "COLUMN_MISSING", "HASH_MISMATCH", "OBJECT_MISSING", "TRANSFORM_INAPPLICABLE")


@dataclass(slots=True)
class ChunkResult:
    key: str
    partitions: list[dict[str, Any]] = field(default_factory=list)  # partition, digest, size, rows, bbox, temporal
    qa: dict[str, Any] = field(default_factory=dict)
    quarantine: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    obligations_applied: list[dict[str, Any]] = field(default_factory=list)
    transforms_applied: list[dict[str, Any]] = field(default_factory=list)  # the pipeline's, with evidence

    @property
    def quarantined_whole(self) -> bool:
        return bool(self.quarantine.get("whole_chunk"))

    @property
    def empty(self) -> bool:
        return not self.inputs


def _describe(exc: BaseException) -> str:
    """An error about a source, without the source's content: parser messages quote the offending row, and a
    receipt is committed."""
    import re

    if isinstance(exc, SourceError):
        return str(exc)
    text = str(exc)
    m = re.match(r"(CSV parse error: [^:]*?(?:got \d+ columns?)?)(?::|$)", text)
    if m:
        return m.group(1).strip()
    if isinstance(exc, KeyError):
        return "a column is missing or named twice"
    return f"unreadable ({type(exc).__name__})"


def row_hash(values: list[Any]) -> str:
    """The digest of a raw row (its values, in order), so a quarantine record can name a row without its content."""
    return "sha256:" + hashlib.sha256(json.dumps(values, ensure_ascii=False, default=str).encode()).hexdigest()


def _local(store: Store, digest: str, work: Path) -> Path:
    path = store.local_path(digest)
    if path is not None:
        return path
    target = work / "inputs" / digest[7:]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as fh:
        for block in store.iter_bytes(digest, verify=True):
            fh.write(block)
    return target


def epoch_us(t: datetime) -> int:
    """An aware instant as microseconds since 1970-01-01T00:00:00Z."""
    return (t - _EPOCH) // timedelta(microseconds=1)


def _refused(result: ChunkResult, contract: Contract, chunk: Period, reasons: list[str], failures: list[str]
             ) -> ChunkResult:
    """The whole chunk to QUARANTINE before a row is read (policy denied, or obligations cannot be applied)."""
    result.quarantine = {
        "kfm_quarantine_version": "v1", "dataset_slug": contract.slug, "chunk": chunk.key, "whole_chunk": True,
        "reasons": sorted(reasons), "threshold_failures": failures, "counts": {}, "records": [],
        "records_listed": 0, "records_total": 0, "rows_object": None,
    }
    return result


def _refuse_early(result: ChunkResult, contract: Contract, chunk: Period, denied: list[str] | None,
                  obligations: list[dict[str, Any]] | None) -> Obligations | None:
    """The obligations ready to apply, or None when the chunk stops before a row is read (``result`` says why)."""
    from kfm_gitops.obligations import Obligations

    dataset = contract.dataset.data
    if denied:
        result.findings.append(Finding("POLICY_DENIED", f"the processing policy denies this data: {', '.join(denied)}",
                                       None, hint="resolve the licence, rights or sensitivity; the chunk is "
                                       "quarantined whole"))
        _refused(result, contract, chunk, denied, [])
        return None
    obl, problems = Obligations.for_dataset(list(obligations if obligations is not None else contract.obligations),
                                            dataset)
    if problems:
        result.findings.extend(problems)
        _refused(result, contract, chunk, ["OBLIGATION_INAPPLICABLE"], [p.message for p in problems])
        return None
    if dataset["extent"]["crs"] != "OGC:CRS84":
        result.findings.append(Finding("CRS_UNSUPPORTED", f"CRS {dataset['extent']['crs']} is not supported yet",
                                       Location(f"datasets/{contract.slug}/dataset.yaml"),
                                       hint="publish in OGC:CRS84 (longitude, latitude)"))
        return None
    return obl


def process_chunk(contract: Contract, manifest: dict[str, Any], chunk: Period, store: Store, work: Path,
                  time_axis: str, obligations: list[dict[str, Any]] | None = None,
                  denied: list[str] | None = None, plan_chunks: Sequence[Period] | None = None) -> ChunkResult:
    """Run one chunk; ``work`` is a private scratch folder (removed by the caller). ``denied``: the processing
    policy's deny codes (the chunk is then quarantined whole, unread). ``plan_chunks``: every chunk of the plan
    (default: this one alone); rows of a shared file that another of them reads are left to it."""
    work.mkdir(parents=True, exist_ok=True)
    result = ChunkResult(chunk.key)
    obl = _refuse_early(result, contract, chunk, denied, obligations)
    if obl is None:
        return result
    placement = Placement.of(contract, chunk, plan_chunks or [chunk])
    run = _ChunkRun(contract, chunk, store, work, placement, obl, result, time_axis)
    try:
        for obj in sorted(manifest["objects"], key=lambda o: o["name"]):
            run.read_object(obj)
    finally:
        run.finish_reading()
    metas = run.settle_partitions()
    run.report()
    if not result.quarantined_whole:
        _store_partitions(result, store, work, metas)
    return result


def _store_partitions(result: ChunkResult, store: Store, work: Path, metas: dict[str, dict[str, Any]]) -> None:
    for key in sorted(metas):
        meta = metas[key]
        if meta["rows"] == 0:
            continue
        digest, size = store_artifact(store, work / "partitions" / f"{key}.parquet")
        result.partitions.append({**meta, "digest": digest, "size": size, "media_type": MEDIA_TYPE})


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a row belongs: this chunk among the plan's chunks (contiguous, in order), and, for each object, which
    of them read it. A row is owned by the chunk whose window holds its partition instant when that chunk reads the
    object; otherwise (outside the plan, another chunk that does not read the file, no time) by the first chunk
    that reads it. Each row of a shared file is thus published or quarantined by exactly one chunk of the plan."""

    chunks: tuple[Period, ...]
    me: int
    bounds: np.ndarray  # the chunks' starts and the last one's end, in microseconds since 1970
    connector: str
    params: dict[str, Any]
    zone: str

    @classmethod
    def of(cls, contract: Contract, chunk: Period, plan_chunks: Sequence[Period]) -> Placement:
        import numpy as np

        chunks = tuple(plan_chunks)
        if chunk.key not in [c.key for c in chunks]:
            chunks = (chunk,)
        me = [c.key for c in chunks].index(chunk.key)
        bounds = np.array([epoch_us(c.start) for c in chunks] + [epoch_us(chunks[-1].end)], dtype=np.int64)
        pipeline = contract.pipeline.data
        return cls(chunks, me, bounds, pipeline["connector"]["type"], dict(pipeline["connector"]["params"]),
                   contract.partitioning.timezone)

    def readers(self, name: str) -> np.ndarray:
        """For each chunk of the plan, whether it reads the object ``name`` (this chunk does; a connector that
        cannot say leaves every row to this chunk)."""
        import numpy as np

        out = np.zeros(len(self.chunks), dtype=bool)
        out[self.me] = True
        if len(self.chunks) == 1 or not name:
            return out
        from kfm_gitops.connectors import Window, readers
        from kfm_gitops.periods import get_zone

        zone = get_zone(self.zone)
        found = readers(self.connector, self.params, [Window(c.key, c.start, c.end, zone) for c in self.chunks], name)
        if found is not None:
            out |= np.array(found, dtype=bool)
        return out

    def owners(self, instants: np.ndarray, readers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's owning chunk (an index into ``chunks``), and the chunk its instant falls in (-1 or past the
        end: outside the plan)."""
        import numpy as np

        at = np.searchsorted(self.bounds, instants, side="right") - 1
        inside = (at >= 0) & (at < len(self.chunks)) & (instants != NO_TIME)
        at = np.where(inside, at, -1)
        first = int(np.argmax(readers))
        owner = np.where(inside & readers[np.clip(at, 0, len(self.chunks) - 1)], at, first)
        return owner, at


class _ChunkRun:
    """The state of one chunk while its objects are read: the normaliser, the QA counts, the partition writers
    and the quarantine, with a writer thread and a verifier thread beside the reading one."""

    def __init__(self, contract: Contract, chunk: Period, store: Store, work: Path, placement: Placement,
                 obl: Obligations, result: ChunkResult, time_axis: str) -> None:
        import numpy as np

        from kfm_gitops.periods import get_zone, periods

        dataset, pipeline = contract.dataset.data, contract.pipeline.data
        self.contract, self.chunk, self.store, self.work = contract, chunk, store, work
        self.placement, self.obl, self.result, self.time_axis = placement, obl, result, time_axis
        self.readers = placement.readers("")
        self.norm = Normalizer(dataset, pipeline)
        self.part = contract.partitioning
        self.axes = contract.time_axes
        self.id_col: str = dataset["schema"]["id_column"]
        self.geom_col: str = dataset["schema"]["geometry"]["column"]
        axis = self.part.axis
        self.time_col: str = self.axes["valid_time"]["start_column"] if axis == "valid_time" else \
            self.axes[axis]["column"]
        self.qa = QA([c["name"] for c in dataset["schema"]["columns"]], self.norm.causes)
        self.out_of_plan = self.norm.causes.code("OUT_OF_WINDOW", self.time_col, "outside the plan's window")
        self.unread = self.norm.causes.code("OUT_OF_WINDOW", self.time_col, "in another chunk of the plan, which does "
                                            "not read this file")
        self.out_schema = obl.output_schema(self.norm.schema())
        self.fmt: str = pipeline["source"]["format"]
        self.options = dict(pipeline["source"].get("options", {}))
        self.nested: str = pipeline["source"].get("nested", "json")
        self.parts = periods(chunk.start, chunk.end, self.part.mode,
                             get_zone(self.part.timezone))
        self.bounds = np.array([epoch_us(p.start) for p in self.parts] + [epoch_us(chunk.end)], dtype=np.int64)
        self.writers: dict[str, PartitionWriter] = {}
        self.quarantined: list[dict[str, Any]] = []
        self.q_rows: list[pa.Table] = []
        # Parquet encoding and compression release the GIL: one writer thread keeps the second core busy while
        # this one parses and checks the next batch. One thread, so each partition's batches are written in order.
        self.writer_pool = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future[None]] = []
        self.verify_pool = ThreadPoolExecutor(max_workers=1)
        self.checks: list[tuple[dict[str, Any], Future[str | None]]] = []

    def read_object(self, obj: dict[str, Any]) -> None:
        import pyarrow as pa

        result, store = self.result, self.store
        result.inputs.append({"uri": f"kfm://artifact/{obj['digest']}", "digest": obj["digest"]})
        if not store.exists(obj["digest"]):
            result.findings.append(Finding("OBJECT_MISSING", f"{obj['name']}: the RAW object {obj['digest']} is "
                                           "missing from the store", None,
                                           hint="restore it (`kfm store pull`) and run again"))
            return
        if store.is_local:
            # The object is hashed on the other core while this one reads it; nothing reaches PROCESSED before the
            # verdict is in (a remote object is verified as it is downloaded).
            self.checks.append((obj, self.verify_pool.submit(store.verify, obj["digest"])))
        path = _local(store, obj["digest"], self.work)
        self.readers = self.placement.readers(obj["name"])
        first = 1
        try:
            for raw in read_batches(path, self.fmt, self.options, self.nested):
                self.take_batch(self.norm.normalize(raw, obj["name"], first))
                first += raw.num_rows
        except (SourceError, OSError, ValueError, KeyError, pa.ArrowException) as exc:
            said = _describe(exc)
            joined = f"{obj['name']} {said}" if said.startswith(("is ", "holds ", "ends ", "has ")) else \
                f"{obj['name']}: {said}"
            result.findings.append(Finding("SOURCE_UNREADABLE", joined,
                                           Location(f"kfm://artifact/{obj['digest']}"),
                                           hint="the chunk is quarantined whole; fix the upstream file"))

    def take_batch(self, n: Normalized) -> None:
        """One normalised batch: the rows this chunk owns (the others are left to the chunk of the plan that owns
        them), window checks, QA counts, quarantine, and the accepted rows to their partitions."""
        import numpy as np
        import pyarrow as pa

        instants = self.instants(n.table)
        owner, plan_at = self.placement.owners(instants, self.readers)
        owned = owner == self.placement.me
        codes = n.causes
        in_plan = (plan_at >= 0) & (plan_at < len(self.placement.chunks))
        mark(codes, owned & ~in_plan, self.out_of_plan)
        mark(codes, owned & in_plan & (plan_at != self.placement.me), self.unread)
        if self.time_axis != self.part.axis:  # the plan's window is on another axis than the partitions'
            chunks = self.placement.chunks
            outside = window_mask(n.table, self.time_axis, self.axes, chunks[0].start, chunks[-1].end,
                                  self.part.timezone)
            mark(codes, owned & outside, self.out_of_plan)
        self.qa.elsewhere += int((~owned).sum())
        if not owned.all():
            keep = pa.array(owned)
            n = Normalized(n.table.filter(keep), codes[owned], n.raw.filter(keep), n.source, n.first_row,
                           {k: v[owned] for k, v in n.absent.items()}, np.nonzero(owned)[0] + n.first_row)
            codes, instants = n.causes, instants[owned]
        good = codes == OK
        self.qa.add(n.table.column(self.id_col), codes, n.absent, int(good.sum()))
        if not good.all():
            self.quarantine_rows(n, np.nonzero(~good)[0])
        if good.any():
            at = np.searchsorted(self.bounds, instants[good], side="right") - 1
            self.place(n.table.filter(pa.array(good)), at)

    def instants(self, table: pa.Table) -> np.ndarray:
        """Each row's partition instant (its time, or the start of its valid_time interval) in microseconds since
        1970; the smallest int64 where it has none."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        starts = pc.cast(pc.cast(partition_start_column(table, self.part.axis, self.axes, self.part.timezone),
                                 pa.timestamp("us")), pa.int64())
        return np.asarray(pc.fill_null(starts, NO_TIME).to_numpy(zero_copy_only=False), dtype=np.int64)

    def quarantine_rows(self, n: Normalized, bad: np.ndarray) -> None:
        """Records (ids, hashes, causes) for quarantine.json, and the raw rows, with where they came from and why
        (the ``$kfm.*`` columns), for the store object."""
        import pyarrow as pa

        rows = n.raw.take(pa.array(bad)).to_pylist()
        ids = n.table.column(self.id_col).take(pa.array(bad)).to_pylist()
        causes = self.norm.causes
        kept = []
        for i, row, rid in zip(bad, rows, ids, strict=True):
            cause = causes[int(n.causes[i])]
            record = {"source": n.source, "row": int(n.row_number(int(i))), "id": None if rid is None else str(rid),
                      "reason": cause.reason, "column": cause.column, "detail": cause.detail,
                      "row_hash": row_hash(list(row.values()))}
            self.quarantined.append(record)
            kept.append({**{k: (None if v is None else str(v)) for k, v in row.items()},
                         **{f"$kfm.{k}": record[k] for k in ("source", "row", "reason", "column", "detail")}})
        self.q_rows.append(pa.Table.from_pylist(kept))

    def place(self, accepted: pa.Table, at: np.ndarray) -> None:
        """Accepted rows to the partition where their instant falls among the chunk's partition boundaries."""
        import numpy as np
        import pyarrow as pa

        for p_index in np.unique(at):
            key = self.parts[int(p_index)].key
            if key not in self.writers:
                self.writers[key] = PartitionWriter(key, self.work / "partitions" / f"{key}.parquet",
                                                    self.out_schema, self.geom_col, self.time_col, self.id_col)
            self.pending.append(self.writer_pool.submit(self.writers[key].write,
                                                        self.obl.apply(accepted.filter(pa.array(at == p_index)))))
        while len(self.pending) > 2:  # bounded: at most a few batches in flight
            self.pending.pop(0).result()

    def finish_reading(self) -> None:
        """Wait for the writer and the verifier; a corrupt object is a finding."""
        try:
            for future in self.pending:
                future.result()
        finally:
            self.writer_pool.shutdown()
        for obj, check in self.checks:
            problem = check.result()
            if problem is not None:
                self.result.findings.append(Finding(
                    problem, f"{obj['name']}: the RAW object {obj['digest']} is "
                    f"{'missing' if problem == 'OBJECT_MISSING' else 'corrupt'} in the store", None,
                    hint="restore it (`kfm store pull`) and run again"))
        self.verify_pool.shutdown()

    def settle_partitions(self) -> dict[str, dict[str, Any]]:
        """Close the partition files; drop what only the whole chunk shows: duplicate ids (the first occurrence,
        by partition then row, stays) and groups under min_count."""
        import numpy as np

        metas = {key: w.close() for key, w in self.writers.items()}
        folder = self.work / "partitions"
        for key, rows in duplicate_rows(folder, sorted(k for k in metas if metas[k]["rows"]), self.id_col,
                                        self.work).items():
            drop = np.zeros(metas[key]["rows"], dtype=bool)
            drop[[r for r, _ in rows]] = True
            self.qa.move(self.norm.causes.code("DUPLICATE_ID", self.id_col, DUPLICATE_DETAIL), len(rows))
            for _, row_id in rows:
                self.qa.samples.setdefault("DUPLICATE_ID", []).append(row_id)
                self.quarantined.append({"source": None, "row": None, "id": row_id, "reason": "DUPLICATE_ID",
                                         "column": self.id_col, "detail": DUPLICATE_DETAIL, "row_hash": None})
            metas[key] = self._rewrite(key, drop)
        if self.obl.min_count is not None:
            import pyarrow.parquet as pq

            self.qa.suppressed = 0
            for key in list(metas):
                path = folder / f"{key}.parquet"
                if metas[key]["rows"] and path.exists():
                    drop = self.obl.suppress(pq.read_table(path, columns=self.obl.min_count[1] or [self.id_col]))
                    self.qa.suppressed += int(drop.sum())
                    if drop.any():
                        metas[key] = self._rewrite(key, drop)
        self.result.obligations_applied = self.obl.evidence(self.out_schema.names)
        return metas

    def _rewrite(self, key: str, drop: np.ndarray) -> dict[str, Any]:
        return drop_rows(self.work / "partitions" / f"{key}.parquet", drop, self.out_schema, self.geom_col,
                         self.time_col, key, self.id_col)

    def report(self) -> None:
        """The findings only the whole chunk shows, the QA report, and the quarantine record."""
        result, chunk = self.result, self.chunk
        inapplicable, lacking = self.norm.source_problems()
        for _, problems in sorted(inapplicable.items()):
            result.findings.extend(Finding("TRANSFORM_INAPPLICABLE", f"chunk {chunk.key}: {p}", None,
                                           hint="a transform that cannot apply is an error: fix the pipeline's "
                                           "transforms or the upstream delivery") for p in problems)
        for source, missing in sorted(lacking.items()):
            result.findings.append(Finding("COLUMN_MISSING", f"chunk {chunk.key}: {source} has no column "
                                           + ", ".join(sorted(missing)) + " that the contract declares",
                                           None, hint=self.missing_hint(source, sorted(missing))))
        result.qa = self.qa.report(dict(self.contract.dataset.data.get("qa", {})), self.contract.slug, chunk.key)
        whole = result.qa["status"] == "fail" or any(f.code in WHOLE_CHUNK_CODES for f in result.findings)
        result.quarantine = self.quarantine_record(whole)
        if whole:
            top = self.qa.top()
            result.findings.append(Finding(
                "QA_THRESHOLD", f"chunk {chunk.key} is quarantined whole: "
                + "; ".join(result.qa["threshold_failures"] or ["an input could not be read"])
                + (f"; top reasons: {', '.join(top)}" if top else ""),
                None, hint="fix the data or shrink the window; nothing of it is published"))
        result.transforms_applied = self.norm.evidence()

    def missing_hint(self, source: str, missing: list[str]) -> str:
        """How to map a missing column: a rename from the source column it most resembles (a Feature's id is the
        source column $id)."""
        import difflib

        have = [c for c in self.norm.source_columns.get(source, []) if c not in missing]
        if self.fmt in ("geojson", "ndjson") and FEATURE_ID not in have:
            have.append(FEATURE_ID)
        pairs = []
        for name in missing:
            close = [FEATURE_ID] if name == self.id_col and FEATURE_ID in have else \
                difflib.get_close_matches(name, have, n=1, cutoff=0.5)
            if close:
                pairs.append(f"{json.dumps(close[0])}: {name}")
        mapping = ", ".join(pairs) or f"<source column>: {missing[0]}"
        tail = "; a Feature's id is the source column $id" if self.fmt in ("geojson", "ndjson") else ""
        return f"fix the upstream delivery, or rename a source column to it (transforms: [{{op: rename, columns: " \
            f"{{{mapping}}}}}]){tail}"

    def quarantine_record(self, whole: bool) -> dict[str, Any]:
        rows_digest = None
        if self.q_rows:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.concat_tables(self.q_rows, promote_options="permissive")
            qpath = self.work / "quarantine.parquet"
            pq.write_table(table, str(qpath), compression="zstd")
            rows_digest = self.store.put_file(qpath).digest
        counts: dict[str, int] = {}
        for q in self.quarantined:
            counts[q["reason"]] = counts.get(q["reason"], 0) + 1
        return {
            "kfm_quarantine_version": "v1",
            "dataset_slug": self.contract.slug,
            "chunk": self.chunk.key,
            "whole_chunk": whole,
            "reasons": ["QA_THRESHOLD"] if whole else [],
            "threshold_failures": self.result.qa["threshold_failures"],
            "counts": dict(sorted(counts.items())),
            "records": self.quarantined[:QUARANTINE_LISTED],
            "records_listed": min(len(self.quarantined), QUARANTINE_LISTED),
            "records_total": len(self.quarantined),
            "rows_object": rows_digest,
        }


def duplicate_rows(folder: Path, keys: list[str], id_column: str, work: Path) -> dict[str, list[tuple[int, str]]]:
    """Rows whose id an earlier row of the chunk has: partition -> [(row number in its file, id)].

    DuckDB reads only the id column of the written partitions and groups it within a fixed memory limit, spilling
    to disk past it, so a chunk of any size is checked in bounded memory.
    """
    if not keys:
        return {}
    import duckdb
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # what the batches used goes back before the grouping starts
    files = [str(folder / f"{key}.parquet") for key in keys]
    spill = work / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": "256MB", "threads": 2, "temp_directory": str(spill),
                                 "preserve_insertion_order": False})
    try:
        column = '"' + id_column.replace('"', '""') + '"'
        found = con.execute(f"""
            WITH t AS (SELECT {column} AS id, filename, file_row_number
                       FROM read_parquet(?, filename = true, file_row_number = true)),
                 twice AS (SELECT id FROM t GROUP BY id HAVING count(*) > 1),
                 ranked AS (SELECT t.id, t.filename, t.file_row_number,
                                   row_number() OVER (PARTITION BY t.id ORDER BY t.filename, t.file_row_number) AS n
                            FROM t SEMI JOIN twice USING (id))
            SELECT filename, file_row_number, id FROM ranked WHERE n > 1
            ORDER BY filename, file_row_number""", [files]).fetchall()
    finally:
        con.close()
    by_file = {f: k for f, k in zip(files, keys, strict=True)}
    out: dict[str, list[tuple[int, str]]] = {}
    for filename, row, row_id in found:
        out.setdefault(by_file[str(filename)], []).append((int(row), str(row_id)))
    return out


def clean(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
