"""Benchmark dispatcher: ``python -m benchmarks NAME [--json] [args...]``.

Imports ``benchmarks.NAME``, calls its ``run(argv)`` with the remaining arguments and prints the
returned dict, as one JSON object with ``--json`` or as ``key: value`` lines otherwise.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    """Names of the benchmark modules in this package."""
    here = str(Path(__file__).parent)
    return sorted(
        info.name
        for info in pkgutil.iter_modules([here])
        if info.name not in {"__main__", "__init__"}
    )


def main(argv: list[str]) -> int:
    """Runs one benchmark and prints its result; returns the process exit code."""
    names = available()
    as_json = "--json" in argv
    args = [arg for arg in argv if arg != "--json"]
    if not args or args[0] not in names:
        given = args[0] if args else "(none)"
        print(f"unknown benchmark {given!r}; available: {', '.join(names)}", file=sys.stderr)
        print("usage: python -m benchmarks NAME [--json] [args...]", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{args[0]}")
    result = module.run(args[1:])
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
