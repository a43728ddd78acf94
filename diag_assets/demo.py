"""``make demo``: audit the defi_top5 fold-3 cells in the embedded instance and print verdicts.

Runs through the same code location the UI loads, against the instance in ``DAGSTER_HOME``
(SQLite under ``.diag/dagster_home`` with ``make``), so every run shows up in ``make ui``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import dagster as dg

from diag_assets.audit.pointer import read_pointer
from diag_assets.audit.run_results import materialized_metadata, refused_capture
from diag_assets.core.audit.report import AuditReport
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.verdicts import AnchorResult, S40Verdict
from diag_assets.core.errors import DiagInputError
from diag_assets.core.metadata import CaptureMetadata
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    AUDIT_JOB,
    AUDIT_REPORT,
    AUDIT_SUMMARY,
    BLOCKED_KEY,
    CAPTURED_FOLD,
    DECISION_KEY,
    FEATURE_ORDER_KEY,
    FIGURES_KEY,
    FIXTURE_CAPTURES_KEY,
    INVARIANCE_GATE,
    LIGHT_AUDIT_JOB,
    MARKET_DATA_JOB,
    PHASE0_EXIT,
    PHASE0_GATES_JOB,
    RELEASE_PARITY_GATE,
    RELEASE_PARITY_JOB,
    S22A1_ANCHOR,
    S40_VERDICT,
    SEAM_GATE,
    SOURCE_TAG,
    SUMMARY_KEY,
    SYMBOLS_PARTITIONS,
)
from diag_assets.partitions import cell_partition_key
from resources.capture_cache import CaptureCacheResource
from resources.market_data import MarketDataResource
from resources.storage import ArtifactStoreResource

DEFAULT_DAGSTER_HOME = Path(".diag/dagster_home")
# The runs' full event stream is in the UI; the terminal shows the table and any warning.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _instance() -> dg.DagsterInstance:
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def main(argv: list[str] | None = None) -> int:
    """Run the demo audit and print a table of verdicts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fold", type=int, default=3, help="Fold to audit (default 3).")
    parser.add_argument(
        "--light",
        action="store_true",
        help="Run light s40 audits: the s22a1 anchor is skipped and every verdict is DOWNGRADED.",
    )
    args = parser.parse_args(argv)

    from diag_assets.definitions import REFERENCE_AUDIT, REFERENCE_MARKET_DATA, defs

    instance = _instance()
    resources = defs.resources or {}
    # The code location binds its market data (no run may override it): read it unbound.
    market_data: MarketDataResource = REFERENCE_MARKET_DATA
    artifacts: ArtifactStoreResource = resources["artifacts"]
    capture_cache: CaptureCacheResource = resources["capture_cache"]
    source = market_data.source()
    symbols = list(source.symbols())
    cells = [CellRef(source.universe, symbol, args.fold) for symbol in symbols]
    market_data.fold_spec()  # a bad fold layout stops the demo before anything runs

    known = set(instance.get_dynamic_partitions(SYMBOLS_PARTITIONS))
    instance.add_dynamic_partitions(SYMBOLS_PARTITIONS, [s for s in symbols if s not in known])

    job_name = LIGHT_AUDIT_JOB if args.light else AUDIT_JOB
    print(
        f"diag-harness demo: {job_name} of {len(cells)} cells of {source.universe} "
        f"(fold {args.fold})"
    )
    print(f"instance: {os.environ['DAGSTER_HOME']}")
    market_job = defs.resolve_job_def(MARKET_DATA_JOB)
    audit_job = defs.resolve_job_def(job_name)
    rows = []
    started = time.perf_counter()
    for cell in cells:
        market_job.execute_in_process(
            instance=instance, partition_key=cell.symbol, run_config=QUIET
        )
        cell_started = time.perf_counter()
        result = audit_job.execute_in_process(
            instance=instance,
            partition_key=cell_partition_key(cell),
            run_config=QUIET,
            # The demo is the operator here: it approves the cold captures it needs.
            tags={SOURCE_TAG: "make-demo", ALLOW_COLD_CAPTURE_TAG: "true"},
            raise_on_error=False,
        )
        wall = time.perf_counter() - cell_started
        refusal = refused_capture(result, CAPTURED_FOLD)
        if not result.success or refusal:
            what = f"REFUSED: {refusal}" if refusal else "FAILED; open it in the UI for the error."
            print(f"  {cell}: run {result.run_id} {what}")
            rows.append((cell, None, None, None, None, wall, result.run_id, _status(refusal)))
            continue
        results = artifacts.results()
        capture = CaptureMetadata.parse(materialized_metadata(result, CAPTURED_FOLD))
        cache = str(capture.cache) if capture and capture.cache else "-"
        rows.append(
            (
                cell,
                read_pointer(REFERENCE_AUDIT, cell, artifacts, capture_cache).manifest,
                results.read(S22A1_ANCHOR, cell, AnchorResult),
                results.read(S40_VERDICT, cell, S40Verdict),
                results.read(AUDIT_REPORT, cell, AuditReport),
                wall,
                result.run_id,
                cache,
            )
        )
        print(f"  {cell}: capture {cache}, done in {wall:.1f} s (run {result.run_id[:8]})")

    summary = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(AUDIT_SUMMARY)], run_config=QUIET
    )
    summary_metadata = materialized_metadata(summary, AUDIT_SUMMARY)
    summary_line = str(summary_metadata[SUMMARY_KEY]).splitlines()[0]
    print()
    print(render_table(rows))
    print()
    print(f"Summary of every registered cell: {summary_line}")
    for status, refs in summary_metadata["failed_cells"].items():
        if refs:
            print(f"  {status}: {', '.join(refs)} (Assets > {AUDIT_SUMMARY} for the errors).")
    print(_release_gate_line(defs.resolve_job_def(RELEASE_PARITY_JOB), instance))
    gates = defs.resolve_job_def(PHASE0_GATES_JOB).execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False
    )
    if gates.success:
        exit_report = materialized_metadata(gates, PHASE0_EXIT)
        blocked = ", ".join(exit_report[BLOCKED_KEY]) or "-"
        print(
            f"Phase-0 gates on this instance's history: feature order "
            f"{exit_report[FEATURE_ORDER_KEY]}; blocked: {blocked} "
            f"(Assets > {PHASE0_EXIT} for the reasons)."
        )
    else:
        print(f"Phase-0 gates failed (run {gates.run_id}); open it in the UI for the error.")
    print(f"\n{len(cells)} cells audited in {time.perf_counter() - started:.1f} s.")
    print(
        "capture_s is what the cold capture cost; a HIT served it from the cache instead "
        "(run `make demo` again to see)."
    )
    print(
        "Open the UI with `make ui`, then http://127.0.0.1:3000: Assets > audit_summary for "
        "the status grid, Assets > audit_report > Checks > audit_clean > Partitions for the "
        "cells that need attention."
    )
    failed = [str(row[0]) for row in rows if row[3] is None or row[4] is None]
    if failed:
        print(f"\nThe audit of {len(failed)} cell(s) did not finish: {', '.join(failed)}.")
        return 1
    return 0


def _release_gate_line(job: dg.JobDefinition, instance: dg.DagsterInstance) -> str:
    """Run the release parity gate on the shared fixture set and say what it decided."""
    result = job.execute_in_process(
        instance=instance,
        run_config=QUIET,
        tags={ALLOW_COLD_CAPTURE_TAG: "true"},
        raise_on_error=False,
    )
    if not result.success:
        return (
            f"The release parity gate did not pass (run {result.run_id}); the capture mode "
            "policy keeps full_replay. Open the run in the UI for the reasons."
        )
    gate = materialized_metadata(result, RELEASE_PARITY_GATE)
    served = {c["cache"] for c in gate[FIXTURE_CAPTURES_KEY] if c["mode"] == "full_replay"}
    invariance = materialized_metadata(result, INVARIANCE_GATE)[DECISION_KEY]
    seam = materialized_metadata(result, SEAM_GATE)[DECISION_KEY]
    return (
        f"Release parity gate on {gate[FIGURES_KEY]['folds']} fixture folds: trial invariance "
        f"{invariance}, prep/train seam {seam}, parity {gate[DECISION_KEY]} (full_replay "
        f"fixtures reused from trial invariance: {'/'.join(sorted(served))}); dataset_only may "
        "now be made the default in diag_assets/policy/capture_mode.json."
    )


REFUSED = "REFUSED"


def _status(refusal: str | None) -> str:
    """What the table's cache column shows for a cell that did not finish."""
    return REFUSED if refusal else "-"


def render_table(rows: list[tuple]) -> str:
    """A fixed-width table of verdicts with timings."""
    header = (
        f"{'cell':<28} {'rows':>6} {'signal':<9} {'p':>5} {'crossref':<12} "
        f"{'audit':<20} {'anchor_iter':>11} {'mode':<12} {'cache':<6} {'capture_s':>9} "
        f"{'anchor_s':>8} {'s40_s':>6} {'run_s':>6}  findings"
    )
    lines = [header, "-" * len(header)]
    for cell, manifest, anchor, verdict, report, wall, run_id, cache in rows:
        if verdict is None or manifest is None or report is None:
            status = REFUSED if cache == REFUSED else "FAILED"
            lines.append(f"{str(cell):<28} {status} (run {run_id})")
            continue
        signal = verdict.signal.value if verdict.signal else "NOT_RUN"
        p_value = f"{verdict.probe.p_value:>5.3f}" if verdict.probe else f"{'-':>5}"
        # A skipped anchor is shown as skipped, never with a stored result of another run.
        used_anchor = anchor if verdict.s22a1_anchor_available and anchor is not None else None
        anchor_iter = str(used_anchor.best_iter) if used_anchor else "skipped"
        anchor_s = f"{used_anchor.elapsed_s:>8.1f}" if used_anchor else f"{'-':>8}"
        lines.append(
            f"{str(cell):<28} {manifest.rows:>6} {signal:<9} "
            f"{p_value} {verdict.s22a1_crossref_status.value:<12} "
            f"{report.certification.value:<20} {anchor_iter:>11} {manifest.mode:<12} {cache:<6} "
            f"{manifest.elapsed_s:>9.1f} {anchor_s} {verdict.elapsed_s:>6.1f} "
            f"{wall:>6.1f}  {', '.join(report.finding_codes) or 'none'}"
        )
    return "\n".join(lines)


def run() -> int:
    """Entry point: input errors print their fix instead of a traceback."""
    try:
        return main()
    except DiagInputError as error:
        print(f"diag-harness demo: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
