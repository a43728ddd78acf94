"""The fault suite: faults injected as production would meet them, one module per kind.

Every test here carries the ``faults`` marker (``pytest -m faults`` runs the suite alone).
Each asserts the same three things of its fault: nothing wrong is ever served, nothing is
lost, and the error a person reads names what happened and the fix.
"""

from pathlib import Path

import pytest

FAULTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``faults``."""
    for item in items:
        if FAULTS in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
