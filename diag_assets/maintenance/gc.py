"""The capture GC job: retire old captures and keep the store's lifecycle rules in place."""

import re
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from diag_assets.component.audit import AUDITS_NAMESPACE, Audit
from diag_assets.core.capture.pointer import PointersInUse, pointers_in_use
from diag_assets.core.names import CAPTURE_GC_JOB, CAPTURED_FOLD
from diag_assets.core.storage.s3 import StoreUnavailable
from resources.capture_cache import CaptureCacheResource
from resources.storage import ArtifactStoreResource

# ``<prefix>/results/captured_fold/<cell>.json`` below the audits' namespace.
_AUDIT_POINTER = re.compile(rf"^[a-z][a-z0-9_]*/results/{CAPTURED_FOLD}/[^/]+\.json$")


class CaptureGcConfig(dg.Config):
    """What the GC keeps."""

    ttl_days: float = Field(default=30.0, gt=0, description="Retire captures unused this long.")
    keep_newest: int = Field(default=2, ge=1, description="Newest complete captures kept per cell.")
    dry_run: bool = Field(default=False, description="Report what would go; delete nothing.")


def captures_in_use(artifacts: ArtifactStoreResource) -> PointersInUse:
    """What the cells' diagnostics currently read: the captures their pointers name.

    Of every audit the store holds results of: the packaged audit's (``results/``) and each
    prefixed audit's (``audits/<prefix>/results/``), whether or not this code location still
    defines it. A pointer that cannot be read is reported, and its cell's captures all kept
    (see :func:`~diag_assets.core.capture.pointer.pointers_in_use`).
    """
    results = artifacts.results()
    store = results.store
    pointers = store.list_keys(f"{results.prefix}/{CAPTURED_FOLD}")
    pointers += [
        key
        for key in store.list_keys(AUDITS_NAMESPACE)
        if _AUDIT_POINTER.fullmatch(key.removeprefix(f"{AUDITS_NAMESPACE}/"))
    ]
    return pointers_in_use(store, pointers)


@dg.op
def collect_capture_garbage(
    context: dg.OpExecutionContext,
    config: CaptureGcConfig,
    capture_cache: CaptureCacheResource,
    artifacts: ArtifactStoreResource,
) -> dg.Output[None]:
    """Retire captures unused for ``ttl_days``; never a leased, capturing or in-use one."""
    try:
        lifecycle = str(artifacts.ensure_lifecycle() or "local store: no lifecycle rules")
    except StoreUnavailable as error:
        # GC is still worth running when this role may not manage bucket rules.
        lifecycle = f"not checked: {error}"
        context.log.warning(f"Could not ensure the store's lifecycle rule: {error}")
    in_use = captures_in_use(artifacts)
    for key, why in in_use.bad.items():
        context.log.warning(f"Results pointer {key} is unusable ({why}); its cell's captures kept.")
    with capture_cache.open() as cache:
        report = cache.collect_garbage(
            now=datetime.now(UTC),
            ttl=timedelta(days=config.ttl_days),
            keep_newest=config.keep_newest,
            in_use=in_use.keys,
            dry_run=config.dry_run,
            events=lambda event: context.log.info(event.to_json()),
            keep_cells=in_use.keep_cells,
        )
        drift_checks, drift_detected = cache.drift_counts()
    rows = "\n".join(
        f"| {d.entry.cell_ref} | `{d.entry.key}` | {d.entry.status.value} | "
        f"{'retire' if d.delete else 'keep'} | {d.reason} |"
        for d in report.decisions
    )
    return dg.Output(
        None,
        metadata={
            "dry_run": dg.MetadataValue.bool(report.dry_run),
            "retired": dg.MetadataValue.int(len(report.deleted)),
            "freed_bytes": dg.MetadataValue.int(report.freed_bytes),
            "deleted_files": dg.MetadataValue.int(report.deleted_files),
            # What dead writers left: attempt folders no manifest names, stale temp files.
            "orphaned_files": dg.MetadataValue.int(report.orphaned_files),
            "temp_files": dg.MetadataValue.int(report.temp_files),
            # The drift-rate gate's figure: the share of drift checks that found drift.
            "drift_checks": dg.MetadataValue.int(drift_checks),
            "drift_detected": dg.MetadataValue.int(drift_detected),
            "drift_rate": dg.MetadataValue.float(drift_detected / drift_checks)
            if drift_checks
            else dg.MetadataValue.null(),
            "lifecycle": lifecycle,
            # Store key -> why; a cell named here keeps all its captures until it is re-captured.
            "bad_pointers": dg.MetadataValue.json(in_use.bad),
            "decisions": dg.MetadataValue.md(
                "| cell | key | status | action | why |\n|---|---|---|---|---|\n" + rows
            ),
        },
    )


GC_DESCRIPTION = (
    "Retire captures unused for a TTL, keeping the newest per cell. Captures are shared by "
    "every audit of the store; none that any audit's results point at is retired."
)


@dg.job(name=CAPTURE_GC_JOB, description=GC_DESCRIPTION)
def capture_gc_job() -> None:
    """The capture GC."""
    collect_capture_garbage()


def build_gc(audit: Audit) -> dg.Definitions:
    """The capture GC job, under the audit's name (each audit of a project has one).

    Every one of them collects the whole shared store, so running any of them is enough.
    """
    if not audit.prefix:
        return dg.Definitions(jobs=[capture_gc_job])

    @dg.job(name=audit.name(CAPTURE_GC_JOB), description=GC_DESCRIPTION)
    def audit_capture_gc_job() -> None:
        collect_capture_garbage()

    return dg.Definitions(jobs=[audit_capture_gc_job])
