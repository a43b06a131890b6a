"""Benchmarks of the serving designs: ``python -m benchmarks`` (or ``make bench``).

Not tests: the suite starts every server it measures on 127.0.0.1, drives it with a
load generator (``wrk``, or an asyncio client when wrk cannot be installed) and
prints one table of medians over interleaved rounds, with ratios against the seed's
design (:mod:`benchmarks.baseline_app`) measured in the same rounds, then the batch
section and whether the performance targets are met.
"""
