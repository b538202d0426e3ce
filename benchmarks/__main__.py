"""`python -m benchmarks` (`make bench`): run every `bench_*` module in turn.

The modules in `SLOW` take minutes: they run only when named as a flag
(`python -m benchmarks --crash`).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks

SLOW = {"bench_crash": "--crash", "bench_export": "--export"}


def main() -> None:
    for module in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if not module.name.startswith("bench_"):
            continue
        flag = SLOW.get(module.name)
        if flag and flag not in sys.argv[1:]:
            print(f"{module.name}: skipped (minutes long; run with `python -m benchmarks {flag}`)")
            continue
        importlib.import_module(f"benchmarks.{module.name}").main()
        print()


if __name__ == "__main__":
    main()
