"""tests/sim: make the helper modules (sim_cases, standin) importable under
pytest's importlib import mode."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
