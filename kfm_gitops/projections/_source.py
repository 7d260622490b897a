"""What a projection is built from: the version the alias publishes (never the working tree), and its PROCESSED
artifacts from the store, each verified against its digest before anything reads it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kfm_gitops import _git
from kfm_gitops.config import Config
from kfm_gitops.projections._model import COVERING, ProjectionError, Source
from kfm_gitops.store import Store, StoreError

if TYPE_CHECKING:
    import pyarrow as pa


def published_source(config: Config, repo: _git.Repository, slug: str) -> Source:
    """The version ``published/<slug>`` shows (its newest ledger entry) and its partitions, read from the
    version's evidence commit."""
    from kfm_gitops.export import published
    from kfm_gitops.release import alias_branch, version_at

    found = next((p for p in published(config, repo) if p.slug == slug), None)
    alias = _git.branch_head(repo, alias_branch(config, slug))
    if found is None or alias is None:
        raise ProjectionError(f"nothing is published for {slug}: there is nothing to project",
                              code="NOTHING_PUBLISHED", hint="publish a version first (`kfm release propose "
                              f"{slug}`, merge it into {config.release_branch}, `kfm promote`)")
    version = version_at(config, repo, found.evidence_commit, slug, found.version_id)
    if version is None:
        raise ProjectionError(f"the evidence commit {found.evidence_commit[:12]} of {slug} has no version "
                              f"{found.version_id}", hint="the ledger names a commit of main that lacks the version")
    manifest = version[0]
    if not manifest.partitions:
        raise ProjectionError(f"{slug} {found.version_id} has no partitions: there is nothing to project")
    partitions = tuple(sorted((p.key, p.processed) for p in manifest.partitions))
    return Source(slug, found.version_id, found.evidence_commit, str(alias), partitions)


def published_slugs(config: Config, repo: _git.Repository) -> list[str]:
    from kfm_gitops.export import published

    return [p.slug for p in published(config, repo)]


@contextlib.contextmanager
def artifact_files(store: Store, source: Source) -> Iterator[list[Path]]:
    """The source's PROCESSED artifacts as local files, in partition order, each verified against its digest; a
    remote store's are copied into a temporary folder (verified as they stream) and removed afterwards."""
    digests = [d for _, d in source.partitions]
    if store.is_local:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            verdicts = list(pool.map(store.verify, digests))
        _refuse_bad(source, store, [(k, d, v) for (k, d), v in zip(source.partitions, verdicts, strict=True) if v])
        paths = [store.local_path(d) for d in digests]
        yield [p for p in paths if p is not None]
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kfm-reindex-") as tmp:
        out = []
        for key, digest in source.partitions:
            path = Path(tmp) / f"{key}.parquet"
            try:
                with open(path, "wb") as fh:
                    for block in store.iter_bytes(digest, verify=True):
                        fh.write(block)
            except StoreError as exc:
                _refuse_bad(source, store, [(key, digest, exc.code)])
            out.append(path)
        yield out


def _refuse_bad(source: Source, store: Store, bad: list[tuple[str, str, str]]) -> None:
    if not bad:
        return
    lines = "; ".join(f"{key}: {digest} {'is missing' if code == 'OBJECT_MISSING' else 'does not match its digest'}"
                      for key, digest, code in bad)
    raise ProjectionError(f"{source.slug} {source.version_id}: PROCESSED artifacts unusable in {store.url} ({lines}); "
                          "nothing was rebuilt", code=bad[0][2],
                          hint="pull them from the team's store (`kfm store pull`); if no store has them intact, "
                          f"this is a backfill, not a reindex (`kfm doctor {source.slug}`)")


def geometry_column(path: Path) -> str:
    """The primary geometry column a GeoParquet artifact declares in its ``geo`` metadata; refused when the file
    is not GeoParquet with the bbox covering column that projections index."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    meta = (schema.metadata or {}).get(b"geo")
    if meta is None or COVERING not in schema.names:
        raise ProjectionError(f"{path.name} is not a GeoParquet artifact with a {COVERING!r} covering column",
                              hint="PROCESSED artifacts are written by kfm's materialize step")
    return str(json.loads(meta)["primary_column"])


def artifact_schema(files: list[Path]) -> pa.Schema:
    """The columns of the artifacts together: a column some partitions lack is NULL in them; a column whose type
    differs between partitions is refused (a projection never guesses a common type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pa.unify_schemas([pq.read_schema(f).remove_metadata() for f in files])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ProjectionError(f"the partitions' artifacts do not agree on their columns: {exc}",
                              hint="a contract change of a column's type is published by a backfill of the whole "
                              "history") from exc
