"""Load benchmarks for Slicestar (``make bench``; not part of ``make test``).

``python -m bench`` seeds a database, serves the app with Granian beside a *ceiling* (a bare
ASGI app returning the dashboard's bytes) and a *stack peer* (a plain FastAPI + SQLAlchemy
async ORM app, ``bench/peers/``), drives all three with ``wrk`` in alternation and writes
JSON and a Markdown table to ``bench/results/``. See ``bench/README.md``.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:  # `python -m bench` from the repository root finds the app's packages
    sys.path.insert(0, _SRC)
