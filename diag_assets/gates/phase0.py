"""Phase-0 gates as assets: each ends in recorded figures, a decision and its reasons.

The history gates (the anchor's cost, re-audit reuse, and the capture cache's drift-rate and
size gates) read the instance's event log or an imported JSONL export; the consumer map lists
the readers of the capture the code location is composed with (:func:`consumer_map_asset`,
built by :func:`diag_assets.definitions.build_definitions`) against the consumer registry.
Trial invariance and the prep/train seam are judged on the shared fixture set of captures
(:mod:`diag_assets.gates.fixture_set`). ``phase0_exit`` orders the features from the stored
reports.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg
from matplotlib.figure import Figure
from pydantic import BaseModel, Field, ValidationError

from diag_assets.capture.readers import repository_readers
from diag_assets.component.audit import Audit
from diag_assets.core.diagnostics.consumers import (
    DIAGNOSTIC_CAPTURE_REQUIREMENTS,
    CaptureReader,
)
from diag_assets.core.errors import DiagInputError
from diag_assets.core.figures import markdown_image, png
from diag_assets.core.figures.history import audits_per_cell, elapsed_histogram
from diag_assets.core.gates.anchor_cost import (
    AnchorCostReport,
    AnchorCostSettings,
    anchor_cost_gate,
)
from diag_assets.core.gates.capture_size import (
    CaptureSizeReport,
    CaptureSizeSettings,
    capture_bytes,
    capture_size_gate,
)
from diag_assets.core.gates.consumer_map import ConsumerMapReport, consumer_map_gate
from diag_assets.core.gates.drift_rate import DriftRateReport, DriftRateSettings, drift_rate_gate
from diag_assets.core.gates.exit import exit_report
from diag_assets.core.gates.history import ANCHOR_EVENT, AUDIT_EVENT, HistoryEvent
from diag_assets.core.gates.records import GateVerdict, read_report, write_report
from diag_assets.core.gates.report import GateReport, bullets
from diag_assets.core.gates.reuse import ReuseReport, ReuseSettings, reuse_gate
from diag_assets.core.names import (
    ANCHOR_COST_GATE,
    AUDITS_PER_CELL_KEY,
    BLOCKED_KEY,
    CAPTURE_SIZE_GATE,
    CAPTURED_FOLD,
    CONSUMERS_GATE,
    DECISION_KEY,
    DRIFT_RATE_GATE,
    ELAPSED_HISTOGRAM_KEY,
    FEATURE_ORDER_KEY,
    FIGURES_KEY,
    INVARIANCE_GATE,
    PHASE0_EXIT,
    PHASE0_GATES_JOB,
    PHASE0_GATES_SCHEDULE,
    REUSE_GATE,
    SEAM_GATE,
)
from diag_assets.gates.history import HistoryConfig, load_history
from diag_assets.gates.thresholds import (
    AnchorCostThresholds,
    CaptureSizeThresholds,
    DriftRateThresholds,
    ReuseThresholds,
    given,
)
from diag_assets.metadata_values import image_metadata, numeric_figure_metadata
from resources.capture_cache import CaptureCacheResource
from resources.storage import ArtifactStoreResource

GROUP = "phase0"


class AnchorCostGateConfig(HistoryConfig):
    """History to read and the anchor cost gate's thresholds."""

    thresholds: AnchorCostThresholds = Field(
        default_factory=AnchorCostThresholds,
        description="The gate's thresholds (AnchorCostSettings); unset ones keep the default.",
    )


class ReuseGateConfig(HistoryConfig):
    """History to read and the re-audit reuse gate's thresholds."""

    thresholds: ReuseThresholds = Field(
        default_factory=ReuseThresholds,
        description="The gate's thresholds (ReuseSettings); unset ones keep the default.",
    )


class DriftRateGateConfig(HistoryConfig):
    """History to read and the drift-rate gate's thresholds."""

    thresholds: DriftRateThresholds = Field(
        default_factory=DriftRateThresholds,
        description="The gate's thresholds (DriftRateSettings); unset ones keep the default.",
    )


ModelT = TypeVar("ModelT", bound=BaseModel)
ReportT = TypeVar("ReportT")


def _settings(model: type[ModelT], thresholds: dg.Config) -> ModelT:
    """The gate's settings: the thresholds the run sets over the model's defaults.

    Each threshold's bounds are checked when the run config is read; what only the whole
    model can check (the drift rates' order) is checked here, before any history is read.
    """
    try:
        return model(**given(thresholds))
    except ValidationError as error:
        raise DiagInputError(
            f"Gate thresholds {given(thresholds)} do not fit {model.__name__}: {error}",
            f"use the fields of {model.__name__}: {', '.join(model.model_fields)}.",
        ) from error


def gate_result(
    report: GateReport[Any, Any],
    uri: str,
    check_results: list[dg.AssetCheckResult] | None = None,
    images: Mapping[str, Figure] | None = None,
    *,
    entries: Mapping[str, dg.MetadataValue] | None = None,
    **extra: Any,
) -> dg.MaterializeResult:
    """A gate's materialization: decision, reasons, report, figures and where it is stored.

    The figures are there whole, as JSON under ``figures``, and each numeric one also as an
    entry of its own (``figures.<field>``), which the asset's Plots tab draws over time;
    ``images`` are pictures of what the gate read, shown inline under their names;
    ``entries`` and ``extra`` are further metadata (``entries`` for keys that are not names).
    """
    return dg.MaterializeResult(
        check_results=check_results,
        metadata={
            DECISION_KEY: str(report.decision),
            "reasons": dg.MetadataValue.md(bullets(report.reasons)),
            "report": dg.MetadataValue.md(report.markdown()),
            FIGURES_KEY: dg.MetadataValue.json(report.figures.model_dump(mode="json")),
            **numeric_figure_metadata(report.figures),
            "report_uri": dg.MetadataValue.path(uri),
            **image_metadata(images or {}),
            **(entries or {}),
            **extra,
        },
    )


def _plot_series(history: list[HistoryEvent]) -> tuple[list[float], dict[str, int]]:
    """Anchor elapsed times and audits per cell: what the gates' plots show."""
    elapsed = [e.elapsed_s for e in history if e.event == ANCHOR_EVENT and e.elapsed_s is not None]
    per_cell: dict[str, int] = {}
    for event in history:
        if event.event == AUDIT_EVENT:
            per_cell[event.cell_ref] = per_cell.get(event.cell_ref, 0) + 1
    return elapsed, per_cell


def _history_gate(
    context: dg.AssetExecutionContext,
    audit: Audit,
    config: AnchorCostGateConfig | ReuseGateConfig | DriftRateGateConfig,
    gate: Callable[..., ReportT],
    settings_model: type[BaseModel],
) -> tuple[list[HistoryEvent], ReportT]:
    """Read the configured history and run ``gate`` on it with the configured thresholds."""
    settings = _settings(settings_model, config.thresholds)
    now = datetime.now(UTC)
    history = load_history(config, context.instance, now, audit.prefix)
    return history, gate(history, settings, now=now)


class CaptureSizeGateConfig(dg.Config):
    """The size gate's budget."""

    thresholds: CaptureSizeThresholds = Field(
        default_factory=CaptureSizeThresholds,
        description="The gate's budget (CaptureSizeSettings); unset keeps the default.",
    )


def consumer_map_asset(audit: Audit, readers: Iterable[CaptureReader]) -> dg.AssetsDefinition:
    """The consumer map ``g_c0_consumers`` of an audit whose capture has ``readers``.

    ``readers`` are the assets that read the audit's ``captured_fold``, with the diagnostic
    each declares, collected when the audit's definitions are composed. When it runs, the map
    adds every other asset of the code location that depends on the capture (a team's own
    asset beside the component, say), so no reader escapes it.
    """
    capture = audit.key(CAPTURED_FOLD)
    composed = set(readers)

    @dg.asset(key=audit.key(CONSUMERS_GATE), group_name=audit.group(GROUP), kinds={"python"})
    def g_c0_consumers(
        context: dg.AssetExecutionContext, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        """The consumer map: every asset that reads captured_fold and what it needs of a capture.

        The readers are the code location's assets that depend on captured_fold, each with the
        diagnostic it declares; one that declares none (or an unregistered one) is unknown:
        full_replay.
        """
        listed = sorted(composed | set(repository_readers(context, capture)))
        report = consumer_map_gate(listed, DIAGNOSTIC_CAPTURE_REQUIREMENTS)
        # Each reader as a link to its asset (the report's table names them as text).
        links = {
            f"reader: {reader.asset}": dg.MetadataValue.asset(
                dg.AssetKey.from_user_string(reader.asset)
            )
            for reader in listed
        }
        uri = write_report(audit.store(artifacts), CONSUMERS_GATE, report)
        return gate_result(report, uri, entries=links)

    return g_c0_consumers


def build_phase0(audit: Audit) -> dg.Definitions:
    """The audit's history gates, its exit report, and their job and schedule.

    Without the consumer map: the code location adds :func:`consumer_map_asset` with the
    readers of the audit's capture once every asset is known.
    """

    @dg.asset(key=audit.key(ANCHOR_COST_GATE), group_name=audit.group(GROUP), kinds={"python"})
    def g_b7_cost(
        context: dg.AssetExecutionContext,
        config: AnchorCostGateConfig,
        artifacts: ArtifactStoreResource,
    ) -> dg.MaterializeResult:
        """The anchor's cost: is skipping the s22a1 anchor (the anchor skip) worth wiring?

        The anchor's cost (p50, p95, variance and how much data size explains it) decides GO,
        GO_LIMITED, DEFER or INSUFFICIENT_DATA.
        """
        history, report = _history_gate(
            context, audit, config, anchor_cost_gate, AnchorCostSettings
        )
        elapsed, _ = _plot_series(history)
        uri = write_report(audit.store(artifacts), ANCHOR_COST_GATE, report)
        return gate_result(report, uri, images={ELAPSED_HISTOGRAM_KEY: elapsed_histogram(elapsed)})

    @dg.asset(key=audit.key(REUSE_GATE), group_name=audit.group(GROUP), kinds={"python"})
    def g_a1_reuse(
        context: dg.AssetExecutionContext,
        config: ReuseGateConfig,
        artifacts: ArtifactStoreResource,
    ) -> dg.MaterializeResult:
        """Re-audit reuse, the capture cache's value: how often are the same cells re-audited?

        HIGH or LOW reuse, with the induced-demand note when low reuse may be caused by the cost
        of a re-audit itself.
        """
        history, report = _history_gate(context, audit, config, reuse_gate, ReuseSettings)
        _, per_cell = _plot_series(history)
        uri = write_report(audit.store(artifacts), REUSE_GATE, report)
        return gate_result(report, uri, images={AUDITS_PER_CELL_KEY: audits_per_cell(per_cell)})

    @dg.asset(key=audit.key(DRIFT_RATE_GATE), group_name=audit.group(GROUP), kinds={"python"})
    def lever1_gate2_drift(
        context: dg.AssetExecutionContext,
        config: DriftRateGateConfig,
        artifacts: ArtifactStoreResource,
    ) -> dg.MaterializeResult:
        """The capture cache's drift rate: the share of drift checks that found drift.

        It argues for the default check_drift policy.
        """
        _, report = _history_gate(context, audit, config, drift_rate_gate, DriftRateSettings)
        return gate_result(report, write_report(audit.store(artifacts), DRIFT_RATE_GATE, report))

    @dg.asset(key=audit.key(CAPTURE_SIZE_GATE), group_name=audit.group(GROUP), kinds={"python"})
    def lever1_gate3_size(
        config: CaptureSizeGateConfig,
        capture_cache: CaptureCacheResource,
        artifacts: ArtifactStoreResource,
    ) -> dg.MaterializeResult:
        """The capture cache's size gate: artifact bytes per capture, from the capture catalog."""
        settings = _settings(CaptureSizeSettings, config.thresholds)
        with capture_cache.open() as cache:
            sizes = capture_bytes(cache.entries())
        report = capture_size_gate(sizes, settings)
        return gate_result(report, write_report(audit.store(artifacts), CAPTURE_SIZE_GATE, report))

    @dg.asset(
        key=audit.key(PHASE0_EXIT),
        group_name=audit.group(GROUP),
        deps=[
            g_b7_cost,
            g_a1_reuse,
            audit.key(CONSUMERS_GATE),
            lever1_gate2_drift,
            lever1_gate3_size,
        ],
        kinds={"python"},
    )
    def phase0_exit(
        context: dg.AssetExecutionContext, config: HistoryConfig, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        """The consolidated Phase-0 report: every gate's decision and the feature order.

        The gates order the anchor skip, the capture cache and the capture modes; the Markdown
        carries every gate's numbers and reasons, and the report is also stored as JSON.
        """
        store = audit.store(artifacts)
        anchor_cost = read_report(store, ANCHOR_COST_GATE, AnchorCostReport)
        reuse = read_report(store, REUSE_GATE, ReuseReport)
        consumer_map = read_report(store, CONSUMERS_GATE, ConsumerMapReport)
        stored = (
            (ANCHOR_COST_GATE, anchor_cost),
            (REUSE_GATE, reuse),
            (CONSUMERS_GATE, consumer_map),
        )
        missing = [name for name, r in stored if r is None]
        if anchor_cost is None or reuse is None or consumer_map is None:
            raise dg.Failure(f"phase0_exit needs {', '.join(missing)}: materialize them first.")
        invariance = read_report(store, INVARIANCE_GATE, GateVerdict)
        seam = read_report(store, SEAM_GATE, GateVerdict)
        report = exit_report(
            anchor_cost,
            reuse,
            consumer_map,
            invariance.passed if invariance else None,
            seam.passed if seam else None,
            drift_rate=read_report(store, DRIFT_RATE_GATE, DriftRateReport),
            capture_size=read_report(store, CAPTURE_SIZE_GATE, CaptureSizeReport),
        )
        uri = write_report(store, PHASE0_EXIT, report)
        elapsed, per_cell = _plot_series(
            load_history(config, context.instance, datetime.now(UTC), audit.prefix)
        )
        plots = {
            "s22a1 elapsed (s)": markdown_image(png(elapsed_histogram(elapsed)), "s22a1 elapsed"),
            "audits per cell": markdown_image(png(audits_per_cell(per_cell)), "audits per cell"),
        }
        return dg.MaterializeResult(
            metadata={
                FEATURE_ORDER_KEY: " -> ".join(report.order) or "none",
                BLOCKED_KEY: dg.MetadataValue.json(report.blocked),
                "deferred": dg.MetadataValue.json(report.deferred),
                "report": dg.MetadataValue.md(report.markdown(appendix=plots)),
                "report_uri": dg.MetadataValue.path(uri),
            }
        )

    phase0_gates_job = dg.define_asset_job(
        audit.name(PHASE0_GATES_JOB),
        # By key: the consumer map is built when the code location is composed.
        selection=[
            g_b7_cost.key,
            g_a1_reuse.key,
            lever1_gate2_drift.key,
            lever1_gate3_size.key,
            audit.key(CONSUMERS_GATE),
            phase0_exit.key,
        ],
        description="Recompute the history-based Phase-0 gates and the exit report.",
    )

    gates_refresh = dg.ScheduleDefinition(
        name=audit.name(PHASE0_GATES_SCHEDULE),
        job=phase0_gates_job,
        cron_schedule="0 6 * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every morning at 06:00 UTC: the history gates, the consumer map and the "
        "exit report read the latest history and re-decide. Running from the moment the code "
        "location loads; it replays no fine-tune.",
    )

    return dg.Definitions(
        assets=[g_b7_cost, g_a1_reuse, lever1_gate2_drift, lever1_gate3_size, phase0_exit],
        jobs=[phase0_gates_job],
        schedules=[gates_refresh],
    )
