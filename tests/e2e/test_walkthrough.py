"""The README's "Audit your own fine-tune", step 7, as written: ``dagster dev`` on the example.

``dagster dev -w workspace.yaml`` runs in ``examples/forward_returns`` with its daemon, so the
audit's ``btc_eth__register_symbols`` sensor registers the real candles' symbols by itself.
The test then launches ``btc_eth__audit`` for ``fold-2|BTCUSDT`` with the approval tag, as an
operator does from the Launchpad, and reads the cell's report back over GraphQL.
"""

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG
from tests.e2e.servers import (
    SERVER_START_TIMEOUT_S,
    UiServer,
    free_port,
    serving,
    tail,
    wait_for_success,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Non-compliant tag keys:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "forward_returns"
LOCATION = "forward_returns"
PARTITION = "fold-2|BTCUSDT"

PARTITIONS_QUERY = """
query Partitions($location: String!) {
  partitionSetsOrError(
    repositorySelector: {repositoryName: "__repository__", repositoryLocationName: $location}
    pipelineName: "btc_eth__audit"
  ) {
    ... on PartitionSets {
      results { partitionsOrError { ... on Partitions { results { name } } } }
    }
  }
}
"""

REPORT_QUERY = """
query Report($partition: String!) {
  assetOrError(assetKey: {path: ["btc_eth", "audit_report"]}) {
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 1) {
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("walkthrough")
    (root / "dagster_home").mkdir()
    (root / "home").mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin')}",
        "HOME": str(root / "home"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "DIAG_STORAGE_DIR": str(root / "artifacts"),
        "DIAG_REQUESTS_DIR": str(root / "requests"),
    }
    port = free_port()
    log = root / "dagster_dev.log"
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with serving(command, EXAMPLE, env, log, port) as server:
        yield server


def _partitions(server: UiServer) -> set[str]:
    sets = server.graphql(PARTITIONS_QUERY, {"location": LOCATION})["partitionSetsOrError"]
    return {
        partition["name"]
        for partition_set in sets.get("results", [])
        for partition in partition_set["partitionsOrError"].get("results", [])
    }


def test_an_operator_audits_a_cell_of_the_example_as_the_readme_says(dagster_dev):
    assert {
        "btc_eth__audit",
        "btc_eth__phase0_gates",
        "btc_eth__lever3_release",
    } <= dagster_dev.jobs
    # The sensor registers the symbols of the candle folder (it runs by default).
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while PARTITION not in _partitions(dagster_dev):
        if time.monotonic() > deadline:
            pytest.fail(f"the symbols were never registered:\n{tail(dagster_dev.log)}")
        time.sleep(2)
    # fold-3 and fold-4 are not cells of this audit's three-fold layout.
    assert not any(name.startswith("fold-3") for name in _partitions(dagster_dev))

    run_id = dagster_dev.client().submit_job_execution(
        "btc_eth__audit",
        repository_location_name=LOCATION,
        repository_name="__repository__",
        tags={
            "dagster/partition": PARTITION,
            "dagster/partition/fold": "fold-2",
            "dagster/partition/symbol": "BTCUSDT",
            ALLOW_COLD_CAPTURE_TAG: "true",
        },
    )
    wait_for_success(dagster_dev, run_id)

    asset = dagster_dev.graphql(REPORT_QUERY, {"partition": PARTITION})["assetOrError"]
    (materialization,) = asset["assetMaterializations"]
    entries = {
        entry["label"]: entry.get("text") or entry.get("mdStr")
        for entry in materialization["metadataEntries"]
    }
    assert entries["certification"] == "CERTIFIED"
    report = entries["report"] or ""
    assert "| s27 | NOT_APPLICABLE |" in report
    assert "| importance_stability | CERTIFIED |" in report
