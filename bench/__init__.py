"""The benchmark suite: this project against its peers, side by side, in one run.

``python -m bench`` runs every scenario and writes ``docs/benchmarks.md`` and
the plots in ``docs/bench/``; ``python -m bench http-small`` runs one.
``python -m bench --smoke --out DIR`` is the short version CI runs.
See ``python -m bench --help`` and the method section of the report.
"""
