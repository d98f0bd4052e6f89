"""The benchmark suite: ``python -m bench`` (or ``make bench``), docs/benchmarks.md.

Each stage is a script here (ingest, fit, scaling, rank, render, smtp) that prints its own table
and writes its figures as JSON; `bench.__main__` runs each in a fresh process, puts every figure
beside the baseline measured in the same run, and writes bench/results.json.
"""
