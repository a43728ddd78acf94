"""audit_report's per-cell audit_clean check, audit_summary's table, grid and links, and the
automation condition that keeps the summary fresh."""

import base64
import dataclasses
import io
import re

import dagster as dg
import pytest
from PIL import Image

from diag_assets.core.audit.attention import ATTENTION_RULE
from diag_assets.core.cells import CellRef
from diag_assets.core.figures import MAX_FIGURE_BYTES
from diag_assets.core.names import (
    AUDIT_REPORT,
    AUDIT_SUMMARY,
    CELL_TABLE_KEY,
    REPORT_CLEAN_CHECK,
    REPORT_LINKS_KEY,
    STATUS_GRID_KEY,
)
from diag_assets.definitions import REFERENCE_AUDIT, build_definitions
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import local_resources
from tests.fixtures.audit import audit_report, audit_summary

CELL = CellRef("defi_top5", "UNIUSDC", 3)
OTHER = CellRef("defi_top5", "OPUSDC", 1)
SYMBOLS = 4  # the instance fixture registers UNIUSDC, OPUSDC, BTCUSDT and ETHUSDT
FOLDS = 5


def _report(cell: CellRef, resources, instance) -> dg.ExecuteInProcessResult:
    """The cell's report alone: without a captured fold it is INCONCLUSIVE_TOOLING, in a second."""
    return dg.materialize(
        [audit_report],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(cell),
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_check_is_declared_per_cell_with_what_it_means():
    (spec,) = audit_report.check_specs
    assert spec.name == REPORT_CLEAN_CHECK and spec.asset_key == dg.AssetKey(AUDIT_REPORT)
    assert spec.partitions_def == REFERENCE_AUDIT.cells_partitions
    assert spec.description == ATTENTION_RULE
    # Every audit job that writes the report runs its check too.
    defs = build_definitions()
    for job_name in ("audit", "light_audit"):
        job = defs.resolve_job_def(job_name)
        assert spec.key in job.asset_layer.asset_graph.asset_check_keys


def test_an_inconclusive_report_fails_its_cell_check_as_an_error(resources, instance):
    result = _report(CELL, resources, instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == REPORT_CLEAN_CHECK
    assert evaluation.partition == "fold-3|UNIUSDC"
    assert evaluation.passed is False
    assert evaluation.severity is dg.AssetCheckSeverity.ERROR
    description = evaluation.description or ""
    assert description.startswith("INCONCLUSIVE_TOOLING: ")
    assert "no captured fold" in description
    metadata = {k: str(v.value) for k, v in evaluation.metadata.items()}
    assert metadata["certification"] == "INCONCLUSIVE_TOOLING"
    assert metadata["findings"] == "none"
    assert metadata["headline"].startswith("audit INCONCLUSIVE_TOOLING")
    assert metadata["urgency"] == "ERROR"
    assert _metadata(result)["certification"] == "INCONCLUSIVE_TOOLING"


def test_the_summary_has_a_row_a_grid_cell_and_a_link_for_every_registered_cell(
    resources, instance
):
    _report(CELL, resources, instance)
    metadata = _metadata(dg.materialize([audit_summary], resources=resources, instance=instance))

    # The counts the demo and other tests read are still there.
    assert metadata["cells"] == SYMBOLS * FOLDS
    assert (metadata["inconclusive_tooling"], metadata["not_audited"]) == (1, SYMBOLS * FOLDS - 1)

    table = metadata[CELL_TABLE_KEY]
    assert [column.name for column in table.schema.columns][:4] == [
        "cell",
        "symbol",
        "fold",
        "status",
    ]
    rows = {record.data["cell"]: record.data for record in table.records}
    assert len(table.records) == len(rows) == SYMBOLS * FOLDS
    audited = rows[str(CELL)]
    assert (audited["status"], audited["certification"], audited["findings"]) == (
        "INCONCLUSIVE_TOOLING",
        "INCONCLUSIVE_TOOLING",
        0,
    )
    assert "no captured fold" in audited["reason"]
    never = rows[str(OTHER)]
    assert (never["status"], never["certification"], never["run_id"]) == ("NOT_AUDITED", "-", "-")
    assert never["reason"] == "no audit of this cell has run."
    page = "/assets/audit_report?view=partitions&partition=fold-3%7CUNIUSDC"
    assert audited["report_page"] == page

    links = metadata[REPORT_LINKS_KEY]
    assert f"[INCONCLUSIVE_TOOLING]({page})" in links
    assert "[not audited](/assets/audit_report?view=partitions&partition=fold-1%7COPUSDC)" in links
    assert len(re.findall(r"\]\(/assets/audit_report\?", links)) == SYMBOLS * FOLDS

    grid = metadata[STATUS_GRID_KEY]
    encoded = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", grid)
    assert encoded is not None
    picture = base64.b64decode(encoded.group(1))
    assert len(picture) < MAX_FIGURE_BYTES
    width, height = Image.open(io.BytesIO(picture)).size
    assert height >= 22 * SYMBOLS and width >= 500


def test_a_prefixed_audit_links_to_its_own_report_pages():
    from diag_assets.audit.summary_view import report_page

    prefixed = dataclasses.replace(REFERENCE_AUDIT, prefix="btc_eth")
    assert report_page(prefixed, CellRef("binance", "BTCUSDT", 2)) == (
        "/assets/btc_eth/audit_report?view=partitions&partition=fold-2%7CBTCUSDT"
    )


@pytest.fixture
def location(resources):
    return build_definitions(resources=resources)


def _requested(defs, instance, cursor):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {
        key: result.get_requested_partitions(key)
        for key in (r.key for r in result.results)
        if result.get_num_requested(key)
    }
    return requested, result.cursor


def test_a_written_report_refreshes_the_summary_once_and_nothing_upstream(
    location, resources, instance
):
    summary = dg.AssetKey(AUDIT_SUMMARY)
    requested, cursor = _requested(location, instance, None)
    assert requested == {}  # nothing written yet

    _report(CELL, resources, instance)  # one cell of the 20; the other 19 are missing
    requested, cursor = _requested(location, instance, cursor)
    assert requested == {summary: {None}}  # the summary, and nothing upstream of it

    requested, cursor = _requested(location, instance, cursor)
    assert requested == {}  # already requested: not again until another report is written

    dg.materialize([audit_summary], resources=resources, instance=instance)
    requested, cursor = _requested(location, instance, cursor)
    assert requested == {}

    _report(OTHER, resources, instance)
    requested, cursor = _requested(location, instance, cursor)
    assert requested == {summary: {None}}


CHECK_QUERY = """
query {
  assetNodes(assetKeys: [{path: ["audit_report"]}]) {
    assetChecksOrError { ... on AssetChecks { checks { name partitionStatuses {
      ... on AssetCheckMultiPartitionStatuses { ranges { primaryDimStartKey
        secondaryDim { ... on AssetCheckDefaultPartitionStatuses {
          succeededPartitions failedPartitions } } } }
    } } } }
  }
  assetCheckExecutions(assetKey: {path: ["audit_report"]}, checkName: "audit_clean", limit: 5) {
    partition status evaluation { severity description }
  }
}
"""


def test_the_ui_shows_the_check_on_the_cell_it_judged(tmp_path, instance):
    """What the Dagster UI reads (its GraphQL): the cell's check failed, with its severity."""
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster_graphql.test.utils import execute_dagster_graphql

    location = tmp_path / "location.py"
    location.write_text(
        "from pathlib import Path\n"
        "from diag_assets.definitions import build_definitions\n"
        "from tests.dagster.conftest import local_resources\n"
        f"defs = build_definitions(resources=local_resources(Path({str(tmp_path)!r})))\n"
    )
    _report(CELL, local_resources(tmp_path), instance)
    origin = LoadableTargetOrigin(python_file=str(location), attribute="defs")
    with in_process_test_workspace(instance, origin) as context, context:
        data = execute_dagster_graphql(context, CHECK_QUERY).data

    (node,) = data["assetNodes"]
    (check,) = node["assetChecksOrError"]["checks"]
    assert check["name"] == REPORT_CLEAN_CHECK
    (fold,) = check["partitionStatuses"]["ranges"]
    assert fold["primaryDimStartKey"] == "fold-3"
    assert fold["secondaryDim"] == {"succeededPartitions": [], "failedPartitions": ["UNIUSDC"]}
    (execution,) = data["assetCheckExecutions"]
    assert (execution["partition"], execution["status"]) == ("fold-3|UNIUSDC", "FAILED")
    assert execution["evaluation"]["severity"] == "ERROR"
    assert execution["evaluation"]["description"].startswith("INCONCLUSIVE_TOOLING")
