"""How agentcache's SQLite store behaves as it grows: 10k -> 100k (-> 1M) entries.

``python -m benchmarks.scale [--max-entries 1000000]`` (``make bench-scale``) writes
``benchmarks/results/scale.md``, ``scale.png`` and ``scale.json``.
"""
