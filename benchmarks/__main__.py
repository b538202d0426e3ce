"""`python -m benchmarks` (`make bench`): run every `bench_*` module in turn."""

from __future__ import annotations

import importlib
import pkgutil

import benchmarks


def main() -> None:
    for module in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if module.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{module.name}").main()
            print()


if __name__ == "__main__":
    main()
