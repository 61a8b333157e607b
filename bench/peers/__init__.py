"""Comparison targets for the benchmark: the ceiling (bare ASGI) and the stack peer (FastAPI)."""
