"""Gateway benchmark: direct-to-nginx vs. a plain pass-through proxy vs. pointsman.

Run with ``python -m tests.bench.run`` from the repository root (see README.md here).
Not a pytest suite: nothing in this package is collected by pytest.
"""
