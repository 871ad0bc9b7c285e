"""signalhub benchmarks: the enforcer against what a user would otherwise build.

Run ``python -m bench`` (full, < 10 min) or ``python -m bench --quick`` (< 1 min). Each
measurement lives in its own module and starts its own embedded broker; see ``bench/README.md``.
"""
