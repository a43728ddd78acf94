"""The fault suite: faults injected as production would meet them, one module per kind.

Every test here carries the ``faults`` marker (``pytest -m faults`` runs the suite alone).
Each asserts the same three things of its fault: nothing wrong is ever served, nothing is
lost, and the error a person reads names what happened and the fix.
"""

from pathlib import Path

import pytest

from tests.fixtures.writers import Backend

FAULTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``faults``."""
    for item in items:
        if FAULTS in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> Backend:
    """The lease and catalog backends a writer runs on: file + SQLite, or PostgreSQL."""
    if request.param == "postgres":
        return Backend("postgres", request.getfixturevalue("postgres_dsn"))
    return Backend("file")
