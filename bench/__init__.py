"""Benchmarks: `bench/run` runs them and writes docs/benchmarks.md (see there)."""
