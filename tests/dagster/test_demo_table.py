"""The demo's verdict table names a cell whose capture was refused as REFUSED, not FAILED."""

from diag_assets.core.cells import CellRef
from diag_assets.demo import render_table


def test_a_refused_cell_and_a_failed_cell_are_told_apart():
    refused, failed = (
        CellRef.parse("defi_top5/UNIUSDC/fold-3"),
        CellRef.parse("defi_top5/OPUSDC/fold-3"),
    )
    table = render_table(
        [
            (refused, None, None, None, None, 1.0, "run-refused", "REFUSED"),
            (failed, None, None, None, None, 1.0, "run-failed", "-"),
        ]
    )
    lines = table.splitlines()[2:]
    assert lines[0].split() == [str(refused), "REFUSED", "(run", "run-refused)"]
    assert lines[1].split() == [str(failed), "FAILED", "(run", "run-failed)"]
