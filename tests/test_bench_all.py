"""bench/all.py reads the ratio lines every benchmark prints and makes one table of them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from conftest import PROJECT


def bench_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_all", PROJECT / "bench" / "all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_all"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_is_run_and_prints_ratios_in_the_form_read() -> None:
    module = bench_all()
    scripts = sorted(p.stem for p in (PROJECT / "bench").glob("*.py") if p.stem not in ("all", "_common"))
    assert sorted(module.BENCHMARKS) == scripts
    for name in scripts:
        assert 'print(f"ratio ' in (PROJECT / "bench" / f"{name}.py").read_text(), name


def test_ratio_lines_become_table_rows(tmp_path: Path) -> None:
    module = bench_all()
    out = ("noise\nratio kfm/reference throughput (acquire): 0.76 (target >= 1.0) MISSED\n"
           "ratio kfm/validators (100 partitions): 1.80 (target <= 2.0) met; build 0.2 s\n")
    ratios = module.parse_ratios("acquire", out)
    assert [(r.what, r.value, r.goal, r.verdict) for r in ratios] == [
        ("kfm/reference throughput (acquire)", "0.76", "target >= 1.0", "MISSED"),
        ("kfm/validators (100 partitions)", "1.80", "target <= 2.0", "met")]
    text = module.table([module.Outcome("acquire", 0, 1.0, ratios, ""),
                         module.Outcome("process", 2, 3.0, (), "boom")], quick=True)
    assert "| acquire | kfm/reference throughput (acquire) | 0.76 | target >= 1.0 | MISSED |" in text
    assert "| process | (failed: exit 2) | - | - | FAILED |" in text
    assert "- cores: " in text and "- packages: kfm-gitops " in text
