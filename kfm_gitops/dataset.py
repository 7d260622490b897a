"""Dataset contracts: datasets/<slug>/dataset.yaml and pipeline.yaml, validated and hashed.

The contract is what makes a backfill reproducible: its spec_hash is part of every version id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kfm_gitops import _yaml, schema
from kfm_gitops._fs import display_path
from kfm_gitops.config import Config, Vocabularies
from kfm_gitops.encodings import ENCODINGS_OF
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import spec_hash
from kfm_gitops.periods import PeriodError, get_zone

DATASET_FILE = "dataset.yaml"
PIPELINE_FILE = "pipeline.yaml"
BUILTIN_CONNECTORS = ("file", "http")
TIME_COLUMN_TYPES = ("timestamp", "date")

PartitionMode = Literal["daily", "monthly", "yearly"]


@dataclass(frozen=True, slots=True)
class Partitioning:
    """How a dataset is cut into partitions: by ``mode`` periods of its ``axis``, in the IANA ``timezone``."""

    mode: PartitionMode
    axis: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Contract:
    slug: str
    folder: Path
    dataset: _yaml.Document
    pipeline: _yaml.Document

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.dataset.data, self.pipeline.data)

    @property
    def label(self) -> str:
        return str(self.dataset.data["policy"]["label"])

    @property
    def obligations(self) -> list[dict[str, Any]]:
        return list(self.dataset.data["policy"]["obligations"])

    @property
    def partitioning(self) -> Partitioning:
        p = self.dataset.data["partitioning"]
        return Partitioning(p["mode"], p["axis"], p.get("timezone", "UTC"))

    @property
    def time_axes(self) -> dict[str, Any]:
        return dict(self.dataset.data["time_axes"])


def dataset_folder(root: Path, slug: str) -> Path:
    return root / "datasets" / slug


def _did_you_mean(value: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"roles: {', '.join(known) or 'none'}"


def check_dataset(doc: _yaml.Document, vocab: Vocabularies, folder_slug: str | None,
                  roles: Sequence[str] | None = None) -> list[Finding]:
    """Checks beyond the schema, for a dataset.yaml that passed its schema; ``roles``, kfm.yaml's, when known."""
    d = doc.data
    out: list[Finding] = []
    for i, rule in enumerate(d.get("promotion", {}).get("approvals", [])):
        if roles is not None and rule["role"] not in roles:
            out.append(Finding("DATASET_ROLE", f"no role {rule['role']!r} in kfm.yaml",
                               doc.locate(("promotion", "approvals", i, "role")),
                               hint=_did_you_mean(rule["role"], roles)))
    if folder_slug is not None and d["slug"] != folder_slug:
        out.append(Finding("DATASET_SLUG_MISMATCH",
                           f"slug {d['slug']!r} differs from its folder datasets/{folder_slug}/",
                           doc.locate(("slug",)), hint="rename the folder or fix the slug"))
    types = {c["name"]: c["type"] for c in d["schema"]["columns"]}
    out.extend(_column_checks(doc))
    out.extend(_axis_checks(doc, vocab, types))
    axes = d["time_axes"]
    part = d["partitioning"]
    if part["axis"] not in axes:
        out.append(Finding("DATASET_PARTITION_AXIS",
                           f"partitioning is on {part['axis']!r}, which time_axes does not map",
                           doc.locate(("partitioning", "axis")),
                           hint=f"mapped axes: {', '.join(axes) or 'none'}"))
    try:
        get_zone(part.get("timezone", "UTC"))
    except PeriodError as exc:
        out.append(Finding("DATASET_TIMEZONE", str(exc), doc.locate(("partitioning", "timezone")),
                           hint="use an IANA name such as UTC or America/Chicago"))
    bbox = d["extent"]["bbox"]
    if bbox[0] > bbox[2] or bbox[1] > bbox[3]:
        out.append(Finding("DATASET_EXTENT", f"extent bbox {bbox} has a minimum above its maximum",
                           doc.locate(("extent", "bbox")), hint="bbox is [min_x, min_y, max_x, max_y]"))
    if d["extent"]["crs"] != "OGC:CRS84":
        out.append(Finding("DATASET_CRS", f"kfm publishes OGC:CRS84 (longitude, latitude) only, not "
                           f"{d['extent']['crs']}: it does not reproject", doc.locate(("extent", "crs")),
                           hint="deliver and publish the data in OGC:CRS84"))
    elif not (
        -180 <= bbox[0] <= 180 and -180 <= bbox[2] <= 180 and -90 <= bbox[1] <= 90 and -90 <= bbox[3] <= 90
    ):
        out.append(Finding("DATASET_EXTENT", f"extent bbox {bbox} is outside longitude/latitude range",
                           doc.locate(("extent", "bbox"))))
    out.extend(check_label(doc, ("policy",), d["policy"], vocab))
    out.extend(_obligation_checks(doc, vocab))
    for col in d["qa"].get("max_null_ratio", {}):
        if col not in types:
            out.append(Finding("DATASET_UNKNOWN_COLUMN", f"qa.max_null_ratio names undeclared column {col!r}",
                               doc.locate(("qa", "max_null_ratio", col), key=True)))
    return out


def _obligation_checks(doc: _yaml.Document, vocab: Vocabularies) -> list[Finding]:
    """The contract's obligations against its own data: what kfm cannot apply, and parameters that would do
    nothing, at their line (an obligation type outside the vocabulary is check_label's)."""
    from kfm_gitops.policy import dataset_columns, normalized, obligation_problems, param_problems

    terms = dataset_columns(doc.data)
    out: list[Finding] = []
    for i, ob in enumerate(doc.data["policy"]["obligations"]):
        if ob["type"] not in vocab.obligation_types:
            continue
        at_param = {f.message: key for key, f in param_problems(normalized(ob), terms[3])}
        for f in obligation_problems([normalized(ob)], *terms):
            path: tuple[str | int, ...] = ("policy", "obligations", i)
            if f.message in at_param:
                path = (*path, "params", at_param[f.message])
            out.append(Finding("DATASET_OBLIGATION_INAPPLICABLE", f.message, doc.locate(path), hint=f.hint))
    return out


def _column_checks(doc: _yaml.Document) -> list[Finding]:
    """Columns declared once, encodings their types can take, the id among them and the geometry apart."""
    d = doc.data
    out: list[Finding] = []
    columns = d["schema"]["columns"]
    names = [c["name"] for c in columns]
    types = {c["name"]: c["type"] for c in columns}
    for i, c in enumerate(columns):
        if names.index(c["name"]) != i:
            out.append(Finding("DATASET_DUPLICATE_COLUMN", f"column {c['name']!r} is declared twice",
                               doc.locate(("schema", "columns", i, "name"))))
        allowed = ENCODINGS_OF.get(c["type"], ())
        if "encoding" in c and c["encoding"] not in allowed:
            out.append(Finding("DATASET_COLUMN_ENCODING", f"column {c['name']!r} is {c['type']}, which cannot be "
                               f"read from {c['encoding']}", doc.locate(("schema", "columns", i, "encoding")),
                               hint=f"a {c['type']} column takes encoding: {', '.join(allowed)}" if allowed else
                               "encoding is for timestamp and date columns"))
    id_col = d["schema"]["id_column"]
    if id_col not in types:
        out.append(Finding("DATASET_UNKNOWN_COLUMN", f"id_column {id_col!r} is not a declared column",
                           doc.locate(("schema", "id_column")), hint=f"declared: {', '.join(names)}"))
    geom = d["schema"]["geometry"]["column"]
    if geom in types:
        out.append(Finding("DATASET_GEOMETRY_COLUMN",
                           f"geometry column {geom!r} must not also be an attribute column",
                           doc.locate(("schema", "geometry", "column"))))
    return out


def _axis_checks(doc: _yaml.Document, vocab: Vocabularies, types: dict[str, str]) -> list[Finding]:
    """Each time axis known, and mapped to a declared timestamp or date column."""
    out: list[Finding] = []
    axes = doc.data["time_axes"]
    for axis, spec in axes.items():
        if axis not in vocab.time_axes:
            out.append(Finding("DATASET_UNKNOWN_TIME_AXIS", f"time axis {axis!r} is not in the vocabulary",
                               doc.locate(("time_axes", axis), key=True),
                               hint=f"known axes: {', '.join(vocab.time_axes)}"))
        cols = ([("start_column", spec["start_column"]), ("end_column", spec["end_column"])]
                if axis == "valid_time" else [("column", spec["column"])])
        for field_name, col in cols:
            if col not in types:
                out.append(Finding("DATASET_UNKNOWN_COLUMN", f"time axis {axis} names column {col!r}, "
                                   "which is not declared", doc.locate(("time_axes", axis, field_name))))
            elif types[col] not in TIME_COLUMN_TYPES:
                out.append(Finding("DATASET_TIME_COLUMN_TYPE",
                                   f"time axis {axis} column {col!r} is {types[col]}, not timestamp or date",
                                   doc.locate(("time_axes", axis, field_name)),
                                   hint="declare it as a timestamp; a source that writes epoch numbers says so with "
                                   "encoding: epoch_s, epoch_ms or epoch_us"))
    return out


def check_label(doc: _yaml.Document, at: tuple[str, ...], policy: dict[str, Any], vocab: Vocabularies,
                label_key: str = "label") -> list[Finding]:
    """The policy label and obligation types come from the vocabulary (unknown = deny)."""
    out: list[Finding] = []
    label = policy[label_key]
    if vocab.label_rank(label) is None:
        out.append(Finding("POLICY_UNKNOWN_LABEL", f"policy label {label!r} is not in the vocabulary",
                           doc.locate((*at, label_key)), hint=f"known labels: {', '.join(vocab.policy_labels)}"))
    for i, ob in enumerate(policy.get("obligations", [])):
        if ob["type"] not in vocab.obligation_types:
            out.append(Finding("POLICY_UNKNOWN_OBLIGATION", f"obligation type {ob['type']!r} is not in the vocabulary",
                               doc.locate((*at, "obligations", i, "type")),
                               hint=f"known types: {', '.join(vocab.obligation_types)}"))
    return out


def check_pipeline(doc: _yaml.Document, dataset: _yaml.Document | None) -> list[Finding]:
    d = doc.data
    out: list[Finding] = []
    connector = d["connector"]["type"]
    if connector not in BUILTIN_CONNECTORS:
        from importlib.metadata import entry_points

        if not any(ep.name == connector for ep in entry_points(group="kfm_gitops.connectors")):
            out.append(Finding("PIPELINE_UNKNOWN_CONNECTOR", f"no connector named {connector!r}",
                               doc.locate(("connector", "type")),
                               hint=f"built in: {', '.join(BUILTIN_CONNECTORS)}; plugins register under the "
                               "entry-point group kfm_gitops.connectors"))
    params = d["connector"]["params"]
    if connector == "file":
        from kfm_gitops._fs import leaves_folder

        for key in ("root", "pattern"):
            value = params.get(key)
            if isinstance(value, str) and leaves_folder(value, absolute_ok=key == "root"):
                out.append(Finding("PIPELINE_PATH", f"{key} {value!r} leaves the "
                                   + ("repository" if key == "root" else "upstream folder"),
                                   doc.locate(("connector", "params", key)),
                                   hint="name a folder below the repository root, or an absolute one" if key == "root"
                                   else "a pattern is relative to root and may not use '..'"))
    for key in ("pattern", "url", "name"):
        template = params.get(key)
        if isinstance(template, str):
            from datetime import UTC, datetime

            from kfm_gitops.templates import TemplateError, Window, expand

            try:
                expand(template, Window("2023-01", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 2, tzinfo=UTC),
                                        UTC))
            except TemplateError as exc:
                out.append(Finding("PIPELINE_TEMPLATE", str(exc), doc.locate(("connector", "params", key))))
    out.extend(_source_checks(doc, dataset))
    out.extend(_transform_checks(doc, dataset))
    return out


def _source_checks(doc: _yaml.Document, dataset: _yaml.Document | None) -> list[Finding]:
    """The source's geometry and CRS against the contract: a Z the contract cannot hold, a 3-D contract fed 2-D."""
    src = doc.data["source"]
    out: list[Finding] = []
    geom = src.get("geometry")
    if src["format"] == "csv" and geom is None:
        out.append(Finding("PIPELINE_GEOMETRY", "a CSV source needs source.geometry (from: xy or wkt)",
                           doc.locate(("source",), key=True)))
    if geom is not None:
        need = {"xy": ("x", "y"), "wkt": ("column",), "wkb": ("column",), "geojson": ()}[geom["from"]]
        for k in need:
            if k not in geom:
                out.append(Finding("PIPELINE_GEOMETRY", f"source.geometry from {geom['from']} needs '{k}'",
                                   doc.locate(("source", "geometry"), key=True)))
        if "z" in geom and geom["from"] != "xy":
            out.append(Finding("PIPELINE_GEOMETRY", f"source.geometry from {geom['from']} takes Z from the geometry "
                               "itself; 'z' names a column for from: xy only", doc.locate(("source", "geometry", "z"))))
    if dataset is None:
        return out
    types = dataset.data["schema"]["geometry"]["types"]
    flat = any(t["op"] == "force_2d" for t in doc.data.get("transforms", []))
    if geom is not None and geom["from"] == "xy" and "z" in geom and not flat and not any(" Z" in t for t in types):
        out.append(Finding("PIPELINE_GEOMETRY", f"source.geometry.z gives points a Z, but the contract declares "
                           f"{', '.join(types)}: every row would be refused", doc.locate(("source", "geometry", "z")),
                           hint="declare Point Z in dataset.yaml (schema.geometry.types), or drop z"))
    if geom is not None and geom["from"] == "xy" and "z" not in geom and all(" Z" in t for t in types):
        out.append(Finding("PIPELINE_GEOMETRY", f"the contract declares {', '.join(types)} only, but "
                           "source.geometry names no z column: every row would be refused",
                           doc.locate(("source", "geometry"), key=True), hint="name the z column, or declare Point"))
    if "crs" in src and src["crs"] != dataset.data["extent"]["crs"]:
        out.append(Finding("PIPELINE_CRS", f"the source is in {src['crs']}, the contract publishes "
                           f"{dataset.data['extent']['crs']}; kfm does not reproject",
                           doc.locate(("source", "crs")), hint="deliver the source in the contract's CRS"))
    return out


def _transform_checks(doc: _yaml.Document, dataset: _yaml.Document | None) -> list[Finding]:
    out: list[Finding] = []
    needs = {"rename": "columns", "drop": "names", "force_2d": None}
    for i, t in enumerate(doc.data.get("transforms", [])):
        need_key = needs[t["op"]]
        if need_key is not None and need_key not in t:
            out.append(Finding("PIPELINE_TRANSFORM", f"transform {t['op']} needs '{need_key}'",
                               doc.locate(("transforms", i))))
        for key in sorted({"columns", "names"} - {need_key} & set(t)):
            out.append(Finding("PIPELINE_TRANSFORM", f"transform {t['op']} takes no '{key}'",
                               doc.locate(("transforms", i, key), key=True)))
        if t["op"] == "rename" and dataset is not None:
            out.extend(_unused_renames(doc, dataset, i, t.get("columns", {})))
        geom = doc.data["source"].get("geometry") or {}
        if t["op"] == "force_2d" and geom.get("from") == "xy" and "z" not in geom:
            out.append(Finding("PIPELINE_TRANSFORM", "force_2d has nothing to flatten: points from x and y columns "
                               "without z are 2-D", doc.locate(("transforms", i, "op")), hint="remove it"))
        if t["op"] == "force_2d" and dataset is not None:
            three_d = [x for x in dataset.data["schema"]["geometry"]["types"] if x.endswith(" Z")]
            if three_d:
                out.append(Finding("PIPELINE_TRANSFORM", f"force_2d drops every Z, but the contract declares "
                                   f"{', '.join(three_d)}", doc.locate(("transforms", i, "op")),
                                   hint="remove force_2d to keep Z, or declare the 2-D types only"))
    return out


def _unused_renames(doc: _yaml.Document, dataset: _yaml.Document, i: int, mapping: dict[str, str]) -> list[Finding]:
    """A rename to a name that neither the contract's columns nor source.geometry read would change nothing."""
    geom = doc.data["source"].get("geometry") or {"from": "geojson"}
    columns = sorted(c["name"] for c in dataset.data["schema"]["columns"])
    read = set(columns) | {geom[k] for k in ("x", "y", "z") if k in geom}
    if geom["from"] != "xy":
        read.add(geom.get("column", "geometry"))
    return [Finding("PIPELINE_TRANSFORM", f"rename maps {source!r} to {target!r}, which neither the contract's "
                    "columns nor source.geometry read: it would change nothing",
                    doc.locate(("transforms", i, "columns", source)),
                    hint=f"the contract's columns: {', '.join(columns)}")
            for source, target in mapping.items() if target not in read]


def load_contract(root: Path, slug: str, vocab: Vocabularies) -> Contract | list[Finding]:
    """Load and check datasets/<slug>/{dataset,pipeline}.yaml; findings if anything is wrong."""
    from kfm_gitops.identity import IdentityError, check_slug

    try:
        check_slug(slug)  # a slug names a folder below datasets/: never a path
    except IdentityError as exc:
        return [Finding("DATASET_NOT_FOUND", str(exc), Location(f"datasets/{slug}"),
                        hint="a dataset is named by its slug, e.g. ks_storm_reports")]
    folder = dataset_folder(root, slug)
    ds_path, pl_path = folder / DATASET_FILE, folder / PIPELINE_FILE
    if not ds_path.is_file():
        return [Finding("DATASET_NOT_FOUND", f"dataset {slug!r} has no contract at {display_path(ds_path)}",
                        Location(display_path(ds_path)), hint="check the slug, or add the dataset's contract")]
    findings: list[Finding] = []
    ds = _yaml.load(ds_path)
    valid_ds: _yaml.Document | None = None  # the pipeline is checked against the dataset only when that is sound
    if isinstance(ds, list):
        findings.extend(ds)
    else:
        errs = schema.validate(ds, "dataset")
        findings.extend(errs or check_dataset(ds, vocab, slug))
        valid_ds = None if errs else ds
    pl = _yaml.load(pl_path)
    if isinstance(pl, list):
        findings.extend(pl)
    else:
        errs = schema.validate(pl, "pipeline")
        findings.extend(errs or check_pipeline(pl, valid_ds))
    if findings or isinstance(ds, list) or isinstance(pl, list):
        return findings
    return Contract(slug, folder, ds, pl)


def require_contract(root: Path, slug: str, vocab: Vocabularies) -> Contract:
    """A valid contract, for commands that act on the dataset; raises with every finding otherwise."""
    from kfm_gitops.errors import FindingsError

    contract = load_contract(root, slug, vocab)
    if isinstance(contract, list):
        raise FindingsError(contract, f"dataset {slug!r} has no valid contract")
    return contract


def list_slugs(root: Path) -> list[str]:
    base = root / "datasets"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / DATASET_FILE).is_file())


def validate_paths(config: Config | None, args: list[str],
                   pipeline_checks: Callable[[_yaml.Document], list[Finding]] | None = None
                   ) -> tuple[list[str], list[Finding]]:
    """Resolve `kfm dataset validate` arguments (slugs, dataset folders or contract files) and check them;
    ``pipeline_checks`` adds what a later layer (the connectors) can say of a pipeline.

    Returns what was checked and the findings.
    """
    checked: list[str] = []
    findings: list[Finding] = []
    vocab = config.vocab if config is not None else Vocabularies()
    targets: list[tuple[str, Path]] = []  # (kind, path)
    if not args:
        if config is None:
            return checked, findings
        args = [str(config.datasets_dir() / s) for s in list_slugs(config.root)]
    for arg in args:
        p = Path(arg)
        if not p.exists() and "/" not in arg and "." not in arg:  # a slug
            if config is None or not (config.datasets_dir() / arg).is_dir():
                shown = f"datasets/{arg}/{DATASET_FILE}"
                checked.append(shown)
                findings.append(Finding("DATASET_NOT_FOUND", f"no dataset {arg!r} in this repository",
                                        Location(shown), hint="check the slug, or add the dataset's contract"))
                continue
            p = config.datasets_dir() / arg
        subfolders = sorted(c for c in p.iterdir() if (c / DATASET_FILE).is_file()) if p.is_dir() else []
        if p.is_dir() and not (p / DATASET_FILE).exists() and subfolders:  # a folder of datasets, e.g. datasets/
            for c in subfolders:
                targets.append(("dataset", c / DATASET_FILE))
                targets.append(("pipeline", c / PIPELINE_FILE))
        elif p.is_dir():
            targets.append(("dataset", p / DATASET_FILE))
            targets.append(("pipeline", p / PIPELINE_FILE))
        elif p.name == PIPELINE_FILE:
            targets.append(("pipeline", p))
        else:
            targets.append(("dataset", p))
    seen: set[Path] = set()
    for kind, path in targets:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        shown = display_path(path)
        checked.append(shown)
        doc = _yaml.load(path, shown=shown)
        if isinstance(doc, list):
            findings.extend(doc)
            continue
        errs = schema.validate(doc, kind)
        if errs:
            findings.extend(errs)
        elif kind == "dataset":
            folder_slug = path.parent.name if path.parent.parent.name == "datasets" else None
            findings.extend(check_dataset(doc, vocab, folder_slug, list(config.roles) if config else None))
        else:
            sibling = _yaml.load(path.parent / DATASET_FILE)
            usable = isinstance(sibling, _yaml.Document) and not schema.validate(sibling, "dataset")
            findings.extend(check_pipeline(doc, sibling if usable and isinstance(sibling, _yaml.Document) else None))
            if pipeline_checks is not None:
                findings.extend(pipeline_checks(doc))
    return checked, findings
