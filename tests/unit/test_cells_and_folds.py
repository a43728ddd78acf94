import pytest

from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec, make_fold


def test_cell_ref_round_trips():
    cell = CellRef.parse("defi_top5/UNIUSDC/fold-3")
    assert (cell.universe, cell.symbol, cell.fold) == ("defi_top5", "UNIUSDC", 3)
    assert str(cell) == "defi_top5/UNIUSDC/fold-3"
    assert cell.slug == "defi_top5__UNIUSDC__fold-3"


@pytest.mark.parametrize(
    "text",
    [
        "../defi_top5/UNIUSDC/fold-3",
        "defi_top5/../UNIUSDC/fold-3",
        "/defi_top5/UNIUSDC/fold-3",
        "defi_top5/UNIUSDC/fold-3/",
        "defi_top5/UNIUSDC/fold-3/extra",
        "defi_top5/uniusdc/fold-3",
        "defi_top5/UNI USDC/fold-3",
        "defi_top5/UNIUSDC/fold-03",
        "defi_top5/UNIUSDC/3",
        "defi_top5\\UNIUSDC\\fold-3",
        "defi_top5/UNIUSDC/fold-3;rm -rf",
        "",
    ],
)
def test_malformed_or_path_like_cell_ref_is_refused(text):
    with pytest.raises(DiagInputError, match="Malformed cell_ref.*Fix:"):
        CellRef.parse(text)


def test_cell_ref_constructor_validates_parts():
    with pytest.raises(DiagInputError, match="not a valid symbol"):
        CellRef("defi_top5", "../X", 1)


def test_folds_walk_forward_with_expanding_train_and_purge():
    spec = FoldSpec(
        n_folds=5, min_train_bars=1000, validation_bars=200, purge_bars=24, label_horizon=12
    )
    folds = [make_fold(spec, k, 10_000) for k in range(5)]
    for previous, fold in zip(folds, folds[1:], strict=False):
        assert fold.train_end > previous.train_end  # expanding window
        assert fold.val_start == previous.val_end  # validation blocks tile the history
    for fold in folds:
        # the last training row's label (t + horizon) stays strictly before validation
        assert (fold.train_end - 1) + spec.label_horizon < fold.val_start
        assert fold.window_end == fold.val_end + spec.label_horizon


def test_purge_shorter_than_horizon_is_refused():
    with pytest.raises(DiagInputError, match="purge_bars.*label_horizon"):
        FoldSpec(purge_bars=5, label_horizon=12)


def test_history_too_short_names_the_longest_fold_it_holds():
    spec = FoldSpec(n_folds=5, min_train_bars=1000, validation_bars=200)
    with pytest.raises(DiagInputError, match="History too short for fold 4.*fold-2"):
        make_fold(spec, 4, spec.bars_needed(2))
    make_fold(spec, 4, spec.bars_needed(4))


def test_fold_outside_spec_is_refused():
    with pytest.raises(DiagInputError, match="Fold 7 does not exist"):
        make_fold(FoldSpec(n_folds=5), 7, 10**6)
