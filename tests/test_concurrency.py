"""Two backfills of one plan at once: the second waits for the first (an OS lock on the repository), never writes
beside it, and finds everything done; the result is one version, made once."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import faults

from kfm_gitops.example import FIRST_PLAN

SLUG = "ks_storm_reports"


def start(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([faults.KFM, "backfill", "run", FIRST_PLAN, "--yes"], cwd=root, env=faults.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_backfills_of_one_plan_take_turns(tmp_path: Path) -> None:
    root = faults.make_template(tmp_path / "repo")
    twin = faults.clone(root, tmp_path / "twin")
    first = start(root)
    deadline = time.monotonic() + 60
    while not list((root / ".kfm" / "staging").glob("*")) and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)  # the first is writing
    second = start(root)
    out1, err1 = first.communicate(timeout=300)
    assert "2023-01" in out1  # the first did the work
    out2, err2 = second.communicate(timeout=300)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    assert f"kfm: waiting for another kfm working on this repository ({root / '.kfm' / 'lock'})" in err2
    # The second ran after the first had finished: it made nothing and reused all six chunks.
    assert len(re.findall(r"^  2023-0[1-6]\s+reused", out2, re.M)) == 6, out2
    assert len(list((root / "releases" / SLUG / "runs").iterdir())) == 6  # one run per chunk: none made twice
    assert [p.name for p in (root / "releases" / SLUG).iterdir() if p.name != "runs"] == \
        [faults.outcome(root).version]
    assert faults.whole(root) == []
    assert faults.run(twin).returncode == 0
    assert faults.outcome(twin).version == faults.outcome(root).version
