"""Benchmarks of dreamflare-store against physical baselines measured in the same run.

Run them all with ``python -m benchmarks`` (``--quick`` for CI, ``--json FILE`` to keep
the figures), or one alone with ``python -m benchmarks.ingest`` and so on.
"""
