"""The Rego engine in a process of its own: regopy can crash the process (a segfault on some ``with`` queries), and
a crash must fail closed instead of taking kfm down. Reads one JSON request on stdin, prints one JSON answer.

An answer that could not be evaluated is ``{"ok": false, "stage": "load"|"query", "error": TEXT}``: "load" when a
module does not parse (a syntax error), "query" when the modules do not compile together or evaluation fails. TEXT
is the engine's error terms (``(rego-errorseq (error ...))``), which name the module and the byte offset."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _error_terms(output: Any) -> str:
    """The error terms of a query that failed. The output's text is only ``<error>``; its node holds the errors,
    each printed as ``(error (errormsg N:message) (errorast ... N:module|offset|length ...))``."""
    try:
        node = output.node()
        parts = [str(node.at(i).json()) for i in range(len(node))]
    except Exception:  # the bindings raise their own types; the fallback below still fails closed
        parts = []
    return "(rego-errorseq\n" + "\n".join(parts) + ")" if parts else str(output)


def _evaluate(regopy: Any, modules: list[list[str]], package: str, data: Any) -> dict[str, Any]:
    # A fresh interpreter per case: nothing carries over from one evaluation to the next.
    rego = regopy.Interpreter()
    try:
        for name, source in modules:
            rego.add_module(name, source)
    except regopy.RegoError as exc:
        return {"ok": False, "stage": "load", "error": str(exc)}
    try:
        rego.set_input_term(json.dumps(data))
        out: dict[str, Any] = {"ok": True}
        for var in ("deny", "allow"):
            output = rego.query(f"x := data.{package}.{var}")
            if not output.ok():
                return {"ok": False, "stage": "query", "error": _error_terms(output)}
            text = str(output).strip()
            # An undefined rule answers "undefined" rather than a binding: the policy never defines it.
            result = {} if text == "undefined" else json.loads(text)
            bindings = result.get("bindings", {}) if isinstance(result, dict) else {}
            out[var] = bindings.get("x", None)
            out[f"{var}_defined"] = "x" in bindings
        return out
    except regopy.RegoError as exc:
        return {"ok": False, "stage": "query", "error": str(exc)}
    except Exception as exc:  # anything else the bindings raise is this case's error, in one line
        return {"ok": False, "stage": "query", "error": f"{type(exc).__name__}: {exc}"}


def main() -> int:
    request = json.load(sys.stdin)
    # The engine prints its own error reports on file descriptor 1: send those to stderr, keep stdout for the answer.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    import regopy

    answers = [_evaluate(regopy, request["modules"], request["package"], case["input"]) for case in request["cases"]]
    with os.fdopen(answer_fd, "w") as stream:
        json.dump({"answers": answers}, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
