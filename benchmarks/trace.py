"""The cost of the replay trace a full_replay capture records for the fixture-set gates.

``python -m benchmarks trace --profile small [--trials N] [--pairs P] --json`` prints
``{"untraced_s", "traced_s", "overhead", ...}``.

One cell is prepared once; then, alternately and ``P`` times each, its fine-tune is replayed
untraced (``recipe.prep`` and ``recipe.run_trials``, what a capture did before traces) and
traced (``replay_cell`` in full_replay, which records the trace). Each side reports its
fastest run, the least disturbed one on a shared machine; ``overhead`` is traced/untraced-1.
"""

import argparse
import time

from benchmarks.profiles import profile_from_args
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.recipe.reference import ReferenceRecipe


def run(argv: list[str]) -> dict:
    """Time untraced and traced replays of one cell, alternately."""
    profile = profile_from_args(argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=2)
    args, _ = parser.parse_known_args(argv)
    config = profile.capture_config()
    if args.trials is not None:
        trials = config.trials.model_copy(update={"n_trials": args.trials})
        config = config.model_copy(update={"trials": trials})
    recipe = ReferenceRecipe()
    cell = CellRef("defi_top5", "UNIUSDC", profile.fold)
    prepared = prepare_cell(cell, profile.source(), profile.fold_spec, recipe, config)

    def untraced() -> float:
        started = time.perf_counter()
        data = recipe.prep(prepared.window, prepared.fold)
        recipe.run_trials(data, prepared.config.trials)
        return time.perf_counter() - started

    def traced() -> float:
        started = time.perf_counter()
        replay_cell(prepared, recipe)
        return time.perf_counter() - started

    timings: dict[str, list[float]] = {"untraced": [], "traced": []}
    for _ in range(args.pairs):
        timings["untraced"].append(untraced())
        timings["traced"].append(traced())
    best_untraced, best_traced = min(timings["untraced"]), min(timings["traced"])
    return {
        "profile": profile.name,
        "trials": prepared.config.trials.n_trials,
        "untraced_s": round(best_untraced, 3),
        "traced_s": round(best_traced, 3),
        "overhead": round(best_traced / best_untraced - 1, 4),
        "untraced_runs_s": [round(t, 3) for t in timings["untraced"]],
        "traced_runs_s": [round(t, 3) for t in timings["traced"]],
    }
