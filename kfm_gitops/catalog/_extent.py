"""Published extents: the artifacts' bounding boxes and time spans, the boxes coarsened outward to the precision of
the obligations when the label is not the open one, so that no catalog states coordinates more precisely than the
data it describes may be seen."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from kfm_gitops.catalog._inputs import ArtifactMeta

BBox = tuple[float, float, float, float]
WHOLE_DEGREE = 1.0  # for a restricted label whose obligations name no precision (centroids, boxes, none at all)
DIGITS = 9  # what the writer records: bounding boxes to 9 decimals


def precision(label: str, open_label: str, obligations: Iterable[Mapping[str, Any]]) -> float | None:
    """Degrees to which extents are coarsened: None (exact) under the open label; else the generalize_geometry
    obligation's precision (round_<n>_decimals: 10^-n; grid_aggregation_<cell>: the cell), else whole degrees."""
    if label == open_label:
        return None
    from kfm_gitops.policy import grid_cell

    for ob in obligations:
        if ob.get("type") != "generalize_geometry":
            continue
        method = str((ob.get("params") or {}).get("method", ""))
        if method.startswith("round_") and method.split("_")[1].isdigit():
            return float(10 ** -int(method.split("_")[1]))
        if method.startswith("grid_aggregation_"):
            try:
                return grid_cell(method)
            except ValueError:
                continue
    return WHOLE_DEGREE


def _snap(value: float, step: float | None, rounding: str) -> float:
    if step is None:
        return round(value, DIGITS)
    q = Decimal(repr(step))
    snapped = (Decimal(repr(value)) / q).to_integral_value(rounding=rounding) * q
    return round(float(snapped), DIGITS)


def coarsen(bbox: BBox, step: float | None) -> BBox:
    """The box grown outward to multiples of ``step`` degrees (exact when None), within longitude and latitude."""
    x0, y0 = _snap(bbox[0], step, ROUND_FLOOR), _snap(bbox[1], step, ROUND_FLOOR)
    x1, y1 = _snap(bbox[2], step, ROUND_CEILING), _snap(bbox[3], step, ROUND_CEILING)
    return (max(x0, -180.0), max(y0, -90.0), min(x1, 180.0), min(y1, 90.0))


def union(boxes: Iterable[BBox]) -> BBox:
    items = list(boxes)
    return (min(b[0] for b in items), min(b[1] for b in items), max(b[2] for b in items), max(b[3] for b in items))


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def span(metas: Iterable[ArtifactMeta]) -> tuple[str, str]:
    """The earliest start and latest end (compared as instants: a fraction of a second does not sort as text)."""
    items = list(metas)
    return min((m.start for m in items), key=instant), max((m.end for m in items), key=instant)
