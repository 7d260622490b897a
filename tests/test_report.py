"""`kfm report PLAN`: the closeout report of the quickstart's gap backfill, as a reviewer reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Runner

SLUG = "ks_storm_reports"


def test_the_gap_backfill_report(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kfm("quickstart", str(tmp_path / "q")).code == 0
    monkeypatch.chdir(tmp_path / "q")
    plans = sorted(Path("plans", SLUG).glob("backfill-2*.yml"))
    gap = next(p for p in plans if 'start: "2023-03-01T00:00:00Z"' in p.read_text())
    r = kfm("report", str(gap))
    assert r.code == 0, r.err
    text = r.out
    assert text.startswith(f"## Backfill report: {SLUG}\n")
    assert "- window: 2023-03-01T00:00:00Z .. 2023-04-01T00:00:00Z (monthly chunks, UTC), event_time" in text
    version = next(line for line in text.splitlines() if line.startswith("- version `")).split("`")[1]
    assert (Path("releases") / SLUG / version / "promotion-manifest.json").is_file()
    row = next(line for line in text.splitlines() if line.startswith("| 2023-03 |"))
    assert row.startswith("| 2023-03 | done | 129 | 120 | 9 (1 DUPLICATE_ID, 2 GEOMETRY_INVALID, "
                          "1 GEOMETRY_OVERPRECISE, 1 OUT_OF_EXTENT, 1 OUT_OF_WINDOW, 3 SCHEMA_INVALID) | [receipt](")
    receipt = row.split("](")[1].rstrip(") |")
    assert Path(receipt).is_file()
    gantt = text.split("```mermaid\n")[1].split("```")[0].splitlines()
    assert gantt[:2] == ["gantt", f"  title Coverage of {SLUG} {version}"]
    filled = gantt.index("  section filled by this plan")
    carried = gantt.index("  section carried from the base")
    assert gantt[filled + 1].startswith("  2023-03 :done, ")
    assert [g.split()[0] for g in gantt[carried + 1:carried + 6]] == ["2023-01", "2023-02", "2023-04", "2023-05",
                                                                      "2023-06"]
    assert "  2023-03 (9 rows) :crit, " in "\n".join(gantt)
    assert "  section missing" not in gantt
    first = kfm("report", f"plans/{SLUG}/backfill-20230705-0c1d2e.yml").out
    assert "  2023-03 (empty) :crit, " in first  # the first release's gap, still missing there
