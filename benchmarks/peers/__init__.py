"""agentcache against the libraries a user would pick instead, on one workload, in one run.

``python -m benchmarks.peers`` (``make bench-peers``) writes ``benchmarks/results/peers.md``,
``peers.png`` and ``peers.json``. A peer whose package is not installed is listed as skipped.
"""
