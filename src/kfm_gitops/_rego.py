"""The Rego engine in a process of its own: regopy can crash the process (a segfault on some ``with`` queries), and
a crash must fail closed instead of taking kfm down. Reads one JSON request on stdin, prints one JSON answer."""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    request = json.load(sys.stdin)
    # The engine prints its own error reports on file descriptor 1: send those to stderr, keep stdout for the answer.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    import regopy

    answers = []
    for case in request["cases"]:
        # A fresh interpreter per case: nothing carries over from one evaluation to the next.
        rego = regopy.Interpreter()
        try:
            for name, source in request["modules"]:
                rego.add_module(name, source)
            rego.set_input_term(json.dumps(case["input"]))
            out = {}
            for var, expr in (("deny", f"x := data.{request['package']}.deny"),
                              ("allow", f"x := data.{request['package']}.allow")):
                text = str(rego.query(expr)).strip()
                # An undefined rule answers "undefined" rather than a binding: the policy never defines it.
                result = {} if text == "undefined" else json.loads(text)
                bindings = result.get("bindings", {}) if isinstance(result, dict) else {}
                out[var] = bindings.get("x", None)
                out[f"{var}_defined"] = "x" in bindings
            answers.append({"ok": True, **out})
        except regopy.RegoError as exc:
            answers.append({"ok": False, "error": str(exc)})
    with os.fdopen(answer_fd, "w") as stream:
        json.dump({"answers": answers}, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
