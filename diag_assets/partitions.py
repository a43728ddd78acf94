"""Partitions: a cell is (symbol, fold).

Symbols are dynamic: the set depends on the market data behind the code location (the
synthetic ``defi_top5`` universe, or a folder of real candles), so the ``register_symbols``
sensor adds them as it finds them. Folds are static (``fold-0`` .. ``fold-4``). A cell is the
multi-partition of the two; its ``cell_ref`` adds the universe of the market data resource:
partition ``fold-3|UNIUSDC`` of universe ``defi_top5`` is ``defi_top5/UNIUSDC/fold-3``.
"""

import dagster as dg

from diag_assets.core.cells import CellRef, fold_partition_key, parse_fold_partition_key
from diag_assets.core.names import SYMBOLS_PARTITIONS

MAX_FOLDS = 5
SYMBOL_DIMENSION = "symbol"
FOLD_DIMENSION = "fold"

symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS)
folds_partitions = dg.StaticPartitionsDefinition([fold_partition_key(k) for k in range(MAX_FOLDS)])
cells_partitions = dg.MultiPartitionsDefinition(
    {SYMBOL_DIMENSION: symbols_partitions, FOLD_DIMENSION: folds_partitions}
)


def cell_partition_key(cell: CellRef) -> dg.MultiPartitionKey:
    """The partition key of a cell."""
    return dg.MultiPartitionKey(
        {SYMBOL_DIMENSION: cell.symbol, FOLD_DIMENSION: fold_partition_key(cell.fold)}
    )


def cell_from_partition_key(partition_key: str, universe: str) -> CellRef:
    """The validated cell of a cells partition key (``fold-3|UNIUSDC``)."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        keys = partition_key.keys_by_dimension
    else:
        keys = cells_partitions.get_partition_key_from_str(partition_key).keys_by_dimension
    return CellRef(universe, keys[SYMBOL_DIMENSION], parse_fold_partition_key(keys[FOLD_DIMENSION]))
