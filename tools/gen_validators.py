"""Write the ahead-of-time validators in kfm_gitops/_generated/ from the package's JSON Schemas.

Run after changing a schema: ``python tools/gen_validators.py``.
tests/test_schemas.py fails while they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kfm_gitops.schema import GENERATED, generated_source

OUT = Path(__file__).resolve().parent.parent / "kfm_gitops" / "_generated"


def main() -> int:
    for name in GENERATED:
        target = OUT / f"{name}_validator.py"
        target.write_text(generated_source(name), encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
