"""The installed package (a wheel, not this checkout) carries its schemas, validators and the example."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import PROJECT


def test_example_works_from_the_built_wheel(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(PROJECT)], check=True, capture_output=True)
    wheel = next(out.glob("kfm_gitops-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(site)
    for rel in ("kfm_gitops/schemas/plan.schema.json", "kfm_gitops/_generated/plan_validator.py",
                "kfm_gitops/examples/ks_storm_reports/dataset.yaml", "kfm_gitops/py.typed",
                "kfm_gitops/catalog/dcat-profile.ttl"):
        assert rel in names
    # Run from the unpacked wheel, away from the checkout: it must not need the repository's files.
    script = (
        "import sys, kfm_gitops\n"
        f"assert kfm_gitops.__file__.startswith({str(site)!r}), kfm_gitops.__file__\n"
        "from kfm_gitops.cli import main\n"
        "code = main(['init', '--example', 'demo'])\n"
        "code = code or main(['plan', 'validate', 'demo/plans/ks_storm_reports/backfill-20230705-0c1d2e.yml'])\n"
        "code = code or main(['dataset', 'validate', 'demo/datasets/ks_storm_reports'])\n"
        "sys.exit(code)\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 plan valid" in done.stdout
    assert "2 contract files valid" in done.stdout
