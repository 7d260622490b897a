"""One chunk through WORK to PROCESSED: RAW objects in; normalised, checked rows out as GeoParquet partitions in
the store; failures in QUARANTINE with a reason each; a QA report and a quarantine record for the run folder.

``process_chunk`` is the library entry point; `kfm process PLAN --chunk KEY` runs it from the command line, and the
backfill run (issue #7) runs it for every chunk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfm_gitops.dataset import Contract
from kfm_gitops.findings import Finding, Location
from kfm_gitops.materialize import MEDIA_TYPE, PartitionWriter, drop_rows, store_artifact
from kfm_gitops.normalize import REASONS, Normalizer, read_batches
from kfm_gitops.periods import Period
from kfm_gitops.qa import QA, partition_start_column, window_mask
from kfm_gitops.store import Store

if TYPE_CHECKING:
    import pyarrow as pa

QUARANTINE_LISTED = 1000  # records listed in quarantine.json; all of them are in the store object


@dataclass(slots=True)
class ChunkResult:
    key: str
    partitions: list[dict[str, Any]] = field(default_factory=list)  # partition, digest, size, rows, bbox, temporal
    qa: dict[str, Any] = field(default_factory=dict)
    quarantine: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    obligations_applied: list[dict[str, Any]] = field(default_factory=list)

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


def _refused(result: ChunkResult, contract: Contract, chunk: Period, reasons: list[str], failures: list[str]
             ) -> ChunkResult:
    """The whole chunk to QUARANTINE before a row is read (policy denied, or obligations cannot be applied)."""
    result.quarantine = {
        "kfm_quarantine_version": "v1", "dataset_slug": contract.slug, "chunk": chunk.key, "whole_chunk": True,
        "reasons": sorted(reasons), "threshold_failures": failures, "counts": {}, "records": [],
        "records_listed": 0, "records_total": 0, "rows_object": None,
    }
    return result


def process_chunk(contract: Contract, manifest: dict[str, Any], chunk: Period, store: Store, work: Path,
                  time_axis: str, obligations: list[dict[str, Any]] | None = None,
                  denied: list[str] | None = None) -> ChunkResult:
    """Run one chunk; ``work`` is a private scratch folder (removed by the caller). ``denied``: the processing
    policy's deny codes (the chunk is then quarantined whole, unread)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from kfm_gitops.obligations import Obligations

    dataset, pipeline = contract.dataset.data, contract.pipeline.data
    work.mkdir(parents=True, exist_ok=True)
    result = ChunkResult(chunk.key)
    norm = Normalizer(dataset, pipeline)
    schema = norm.schema()
    part = contract.partitioning
    axes = contract.time_axes
    id_col = dataset["schema"]["id_column"]
    geom_col = dataset["schema"]["geometry"]["column"]
    time_col = axes["valid_time"]["start_column"] if part.axis == "valid_time" else axes[part.axis]["column"]
    qa = QA([c["name"] for c in dataset["schema"]["columns"]])
    if denied:
        result.findings.append(Finding("POLICY_DENIED", f"the processing policy denies this data: {', '.join(denied)}",
                                       None, hint="resolve the licence, rights or sensitivity; the chunk is "
                                       "quarantined whole"))
        return _refused(result, contract, chunk, denied, [])
    obl, problems = Obligations.for_dataset(list(obligations if obligations is not None else contract.obligations),
                                            dataset)
    if problems:
        result.findings.extend(problems)
        return _refused(result, contract, chunk, ["OBLIGATION_INAPPLICABLE"], [p.message for p in problems])
    out_schema = obl.output_schema(schema)
    writers: dict[str, PartitionWriter] = {}
    quarantined: list[dict[str, Any]] = []
    q_rows: list[pa.Table] = []
    fmt = pipeline["source"]["format"]
    options = dict(pipeline["source"].get("options", {}))
    from concurrent.futures import Future, ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    from kfm_gitops.periods import get_zone, periods

    chunk_parts = periods(chunk.start, chunk.end, part.mode, get_zone(part.timezone))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    bounds = np.array([(p.start - epoch) // timedelta(microseconds=1) for p in chunk_parts]
                      + [(chunk.end - epoch) // timedelta(microseconds=1)], dtype=np.int64)
    # Parquet encoding and compression release the GIL: one writer thread keeps the second core busy while this
    # one parses and checks the next batch. One thread, so each partition's batches are written in order.
    writer_pool = ThreadPoolExecutor(max_workers=1)
    pending: list[Future[None]] = []
    verify_pool = ThreadPoolExecutor(max_workers=1)
    checks: list[tuple[dict[str, Any], Future[str | None]]] = []
    if dataset["extent"]["crs"] != "OGC:CRS84":
        result.findings.append(Finding("CRS_UNSUPPORTED", f"CRS {dataset['extent']['crs']} is not supported yet",
                                       Location(f"datasets/{contract.slug}/dataset.yaml"),
                                       hint="publish in OGC:CRS84 (longitude, latitude)"))
        return result
    for obj in sorted(manifest["objects"], key=lambda o: o["name"]):
        result.inputs.append({"uri": f"kfm://artifact/{obj['digest']}", "digest": obj["digest"]})
        if not store.exists(obj["digest"]):
            result.findings.append(Finding("OBJECT_MISSING", f"{obj['name']}: the RAW object {obj['digest']} is "
                                           "missing from the store", None,
                                           hint="restore it (`kfm store pull`) and run again"))
            continue
        if store.is_local:
            # The object is hashed on the other core while this one reads it; nothing reaches PROCESSED before the
            # verdict is in (a remote object is verified as it is downloaded).
            checks.append((obj, verify_pool.submit(store.verify, obj["digest"])))
        path = _local(store, obj["digest"], work)
        first = 1
        try:
            batches = list(read_batches(path, fmt, options)) if fmt in ("geojson",) else read_batches(path, fmt,
                                                                                                        options)
            for raw in batches:
                n = norm.normalize(raw, obj["name"], first)
                reasons = n.reasons
                outside = window_mask(n.table, time_axis, axes, chunk.start, chunk.end, part.timezone)
                reasons[(reasons == 0) & outside] = REASONS.index("OUT_OF_WINDOW") + 1
                good = pa.array(reasons == 0)
                accepted = n.table.filter(good)
                qa.add(n.table, reasons, id_col, accepted)
                bad = np.nonzero(reasons)[0]
                if len(bad):
                    sub = n.raw.take(pa.array(bad))
                    rows = sub.to_pylist()
                    ids = n.table.column(id_col).take(pa.array(bad)).to_pylist()
                    for i, row, rid in zip(bad, rows, ids, strict=True):
                        quarantined.append({"source": obj["name"], "row": int(first + i),
                                            "id": None if rid is None else str(rid),
                                            "reason": REASONS[int(reasons[i]) - 1],
                                            "row_hash": row_hash(list(row.values()))})
                    q_rows.append(pa.Table.from_pylist([{k: (None if v is None else str(v)) for k, v in r.items()}
                                                        for r in rows]))
                if accepted.num_rows:
                    # The partition of each row: where its instant falls among the chunk's partition boundaries.
                    starts = pc.cast(pc.cast(partition_start_column(accepted, part.axis, axes, part.timezone),
                                             pa.timestamp("us")), pa.int64())
                    at = np.searchsorted(bounds, starts.to_numpy(zero_copy_only=False), side="right") - 1
                    elsewhere = (at < 0) | (at >= len(chunk_parts))
                    if elsewhere.any():  # a valid_time interval that starts in another chunk belongs there
                        qa.elsewhere += int(elsewhere.sum())
                        qa.accepted -= int(elsewhere.sum())
                        keep = ~elsewhere
                        accepted, at = accepted.filter(pa.array(keep)), at[keep]
                    for p_index in np.unique(at):
                        key = chunk_parts[int(p_index)].key
                        if key not in writers:
                            writers[key] = PartitionWriter(key, work / "partitions" / f"{key}.parquet",
                                                           out_schema, geom_col, time_col, id_col)
                        pending.append(writer_pool.submit(writers[key].write,
                                                          obl.apply(accepted.filter(pa.array(at == p_index)))))
                    while len(pending) > 2:  # bounded: at most a few batches in flight
                        pending.pop(0).result()
                first += raw.num_rows
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            result.findings.append(Finding("SOURCE_UNREADABLE", f"{obj['name']}: {_describe(exc)}",
                                           Location(f"kfm://artifact/{obj['digest']}"),
                                           hint="the chunk is quarantined whole; fix the upstream file"))
    for future in pending:
        future.result()
    writer_pool.shutdown()
    for obj, check in checks:
        problem = check.result()
        if problem is not None:
            result.findings.append(Finding(problem, f"{obj['name']}: the RAW object {obj['digest']} is "
                                           f"{'missing' if problem == 'OBJECT_MISSING' else 'corrupt'} in the store",
                                           None, hint="restore it (`kfm store pull`) and run again"))
    verify_pool.shutdown()
    metas = {key: w.close() for key, w in writers.items()}
    # Duplicate ids: the first occurrence (by partition, then row) stays; later ones go to quarantine.
    for key, rows in duplicate_rows(work / "partitions", sorted(k for k in metas if metas[k]["rows"]),
                                    id_col, work).items():
        drop = np.zeros(metas[key]["rows"], dtype=bool)
        drop[[r for r, _ in rows]] = True
        qa.move(REASONS.index("DUPLICATE_ID") + 1, len(rows))
        for _, row_id in rows:
            qa.samples.setdefault("DUPLICATE_ID", []).append(row_id)
            quarantined.append({"source": None, "row": None, "id": row_id, "reason": "DUPLICATE_ID", "row_hash": None})
        metas[key] = drop_rows(work / "partitions" / f"{key}.parquet", drop, out_schema, geom_col, time_col, key,
                               id_col)
    if obl.min_count is not None:
        import pyarrow.parquet as pq

        for key in list(metas):
            path = work / "partitions" / f"{key}.parquet"
            if metas[key]["rows"] and path.exists():
                drop = obl.suppress(pq.read_table(path, columns=obl.min_count[1] or [id_col]))
                if drop.any():
                    metas[key] = drop_rows(path, drop, out_schema, geom_col, time_col, key, id_col)
    result.obligations_applied = obl.evidence(out_schema.names)
    for source, missing in sorted(norm.missing_columns.items()):
        result.findings.append(Finding("COLUMN_MISSING", f"chunk {chunk.key}: {source} has no column "
                                       + ", ".join(sorted(missing)) + " that the contract declares",
                                       None, hint="fix the upstream delivery, or map it with a rename transform"))
    if qa.elsewhere:
        result.findings.append(Finding("OTHER_CHUNK", f"{qa.elsewhere} row(s) start in another chunk's partitions "
                                       "and are left to it", None, severity="warning"))
    result.qa = qa.report(dict(dataset.get("qa", {})), contract.slug, chunk.key)
    whole = result.qa["status"] == "fail" or any(
        f.code in ("SOURCE_UNREADABLE", "COLUMN_MISSING", "HASH_MISMATCH", "OBJECT_MISSING") for f in result.findings)
    rows_digest = None
    if q_rows:
        import pyarrow.parquet as pq

        table = pa.concat_tables(q_rows, promote_options="permissive")
        qpath = work / "quarantine.parquet"
        pq.write_table(table, str(qpath), compression="zstd")
        rows_digest = store.put_file(qpath).digest
    counts: dict[str, int] = {}
    for q in quarantined:
        counts[q["reason"]] = counts.get(q["reason"], 0) + 1
    result.quarantine = {
        "kfm_quarantine_version": "v1",
        "dataset_slug": contract.slug,
        "chunk": chunk.key,
        "whole_chunk": whole,
        "reasons": ["QA_THRESHOLD"] if whole else [],
        "threshold_failures": result.qa["threshold_failures"],
        "counts": dict(sorted(counts.items())),
        "records": quarantined[:QUARANTINE_LISTED],
        "records_listed": min(len(quarantined), QUARANTINE_LISTED),
        "records_total": len(quarantined),
        "rows_object": rows_digest,
    }
    if whole:
        result.findings.append(Finding("QA_THRESHOLD", f"chunk {chunk.key} is quarantined whole: "
                                       + "; ".join(result.qa["threshold_failures"] or ["an input could not be read"]),
                                       None, hint="fix the data or shrink the window; nothing of it is published"))
        return result
    for key in sorted(metas):
        meta = metas[key]
        if meta["rows"] == 0:
            continue
        digest, size = store_artifact(store, work / "partitions" / f"{key}.parquet")
        result.partitions.append({**meta, "digest": digest, "size": size, "media_type": MEDIA_TYPE})
    return result


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
