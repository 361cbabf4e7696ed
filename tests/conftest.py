"""Root of the test tree: makes tests/helpers importable from every test
directory as `helpers`.

pytest's default (prepend) import mode already puts the directory of this
rootless conftest on sys.path; doing it here explicitly keeps `import helpers`
working under --import-mode=importlib too, and for scripts run by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
