"""tests/dsp: make the helper modules next to the tests (``_spandsp_*.py``) importable.

pytest runs with ``--import-mode=importlib`` (pyproject.toml), which does not
put a test's folder on ``sys.path``; the spandsp bridges live here.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
