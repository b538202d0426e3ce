"""Benchmarks: each `bench_*` module has a `main()` that runs it and prints its figures."""
