"""Benchmark `kfm plan validate --standalone` against `check-jsonschema` as cold processes.

Two measurements, each alternating the two tools round by round (kfm, check-jsonschema, kfm, ...) so that drift in
machine load affects both alike:

1. one valid plan per invocation; target ratio kfm/check-jsonschema at most 0.7, mark 0.4;
2. 500 copies of that plan in one invocation; target ratio at most 0.5.

check-jsonschema is given a self-contained bundle of the plan schema (``kfm_gitops.schema.bundle("plan")``), since
the shipped schema refers to common.schema.json through an https ``$id`` and there is no network. Both tools must
accept the plan (exit 0) before anything is timed; those checks double as warm-up runs. This is a script, not a
test: it prints figures and fails only when a tool does.

Bytecode: kfm is installed editable, so its modules (among them the large generated validators) have .pyc files only
if Python may write them; with PYTHONDONTWRITEBYTECODE set, as in some sandboxes and CI images, every cold start
compiles them from source again, which a user of an installed wheel never pays (pip compiles at install time, as it
did for check-jsonschema). By default the tools therefore run with PYTHONDONTWRITEBYTECODE removed and
PYTHONPYCACHEPREFIX pointing into the benchmark's temporary directory, so nothing is written into the repository or
the venv; ``--no-pyc-cache`` runs them with the environment as inherited instead.

Run it from the repository root with::

    .venv/bin/python bench/plan_validate.py            # full run
    .venv/bin/python bench/plan_validate.py --quick    # smoke run, few rounds
    .venv/bin/python bench/plan_validate.py --rounds 9 # rounds for the one-plan case (500 plans: fewer)
    .venv/bin/python bench/plan_validate.py --no-pyc-cache
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import BIN, KFM, PLAN_REL, options, parse, print_total, pyc_note, rounds_note, timed, tool_env, verdict

from kfm_gitops.schema import bundle

REPO_ROOT = Path(__file__).resolve().parent.parent
PLAN = REPO_ROOT / PLAN_REL
CHECK_JSONSCHEMA = BIN / "check-jsonschema"

MANY = 500
DEFAULT_ROUNDS = 21
DEFAULT_ROUNDS_MANY = 5
QUICK_ROUNDS = 3
QUICK_ROUNDS_MANY = 1
TARGET_ONE, MARK_ONE = 0.7, 0.4
TARGET_MANY = 0.5


def kfm_command(files: Sequence[Path]) -> list[str]:
    return [str(KFM), "plan", "validate", "--standalone", *map(str, files)]


def cjs_command(schema: Path, files: Sequence[Path]) -> list[str]:
    return [str(CHECK_JSONSCHEMA), "--schemafile", str(schema), *map(str, files)]


def require_success(name: str, command: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
    """Abort unless the tool accepts the files: timing a failing run means nothing."""
    _, _, done = timed(command, cwd, env)
    if done.returncode != 0:
        sys.exit(
            f"abort: {name} exited {done.returncode} on the valid plan(s), nothing timed\n"
            f"command: {' '.join(command[:6])}{' ...' if len(command) > 6 else ''}\n"
            f"stdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"
        )


def alternate(commands: dict[str, list[str]], rounds: int, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Median wall time of each command, run interleaved A, B, A, B, ... for `rounds` rounds."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            elapsed, _, done = timed(command, cwd, env)
            if done.returncode != 0:
                sys.exit(f"abort: {name} exited {done.returncode} during timing\nstderr:\n{done.stderr[-2000:]}")
            times[name].append(elapsed)
    return {name: statistics.median(samples) for name, samples in times.items()}


def report(title: str, medians: dict[str, float], rounds: int, target: float, mark: float | None) -> float:
    ratio = medians["kfm"] / medians["check-jsonschema"]
    print(f"\n{title} ({rounds_note(rounds)})")
    print(f"  {'tool':<18} {'median s':>10}")
    for name, seconds in medians.items():
        print(f"  {name:<18} {seconds:>10.4f}")
    goal = f"target <= {target}" + (f", mark {mark}" if mark is not None else "")
    print(f"ratio kfm/check-jsonschema ({title}): {ratio:.2f} ({goal}) {verdict(ratio <= target)}")
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(
        __doc__,
        rounds_help=f"rounds for the one-plan case (default {DEFAULT_ROUNDS}; the {MANY}-plan case "
        f"uses min(N, {DEFAULT_ROUNDS_MANY}))",
        quick_help=f"smoke run: {QUICK_ROUNDS} rounds for one plan, {QUICK_ROUNDS_MANY} for {MANY}",
        who="the tools",
    )
    args = parse(parser, argv)
    if args.quick:
        rounds, rounds_many = QUICK_ROUNDS, QUICK_ROUNDS_MANY
    else:
        rounds = DEFAULT_ROUNDS
        rounds_many = DEFAULT_ROUNDS_MANY
    if args.rounds is not None:
        rounds, rounds_many = args.rounds, min(args.rounds, rounds_many)

    for exe in (KFM, CHECK_JSONSCHEMA):
        if not exe.is_file():
            sys.exit(f"abort: {exe} not found; install the project with its dev extra in this venv")
    if not PLAN.is_file():
        sys.exit(f"abort: example plan {PLAN} not found")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        schema = tmp / "plan.bundled.schema.json"
        schema.write_text(json.dumps(bundle("plan"), indent=2) + "\n", encoding="utf-8")
        plans_dir = tmp / "plans"
        plans_dir.mkdir()
        many = [plans_dir / f"backfill-{i:04d}.yml" for i in range(MANY)]
        for path in many:
            shutil.copyfile(PLAN, path)

        one_cmds = {"kfm": kfm_command([PLAN]), "check-jsonschema": cjs_command(schema, [PLAN])}
        many_cmds = {"kfm": kfm_command(many), "check-jsonschema": cjs_command(schema, many)}
        for cmds in (one_cmds, many_cmds):
            for name, command in cmds.items():
                require_success(name, command, tmp, env)

        print(f"python {sys.version.split()[0]}; plan {PLAN.relative_to(REPO_ROOT)}; cwd {tmp}")
        print(pyc_note(args.no_pyc_cache, env))
        medians_one = alternate(one_cmds, rounds, tmp, env)
        report("1 plan", medians_one, rounds, TARGET_ONE, MARK_ONE)
        medians_many = alternate(many_cmds, rounds_many, tmp, env)
        report(f"{MANY} plans", medians_many, rounds_many, TARGET_MANY, None)
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
