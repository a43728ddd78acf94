"""End to end through the operator's UI: dagster dev, GraphQL and headless Chromium.

``dagster dev`` (webserver and daemon, so sensors and schedules run as in production) serves
the project's ``workspace.yaml`` over a throw-away instance, with the market data read from a
folder of candle files the test writes (the ``UNIUSDC`` and ``AAVEUSDC`` bars of ``defi_top5``)
so that it can change them while the UI is up. The module walks an operator's day:

1. the approval path: ``approved_cold_audit`` captures ``fold-3|UNIUSDC`` cold without a
   hand-typed tag (CERTIFIED), then ``light_audit`` re-audits it warm (DOWNGRADED), each verdict
   read back over GraphQL and seen on the page;
2. a plain ``audit`` of a cold cell is refused at its capture, and ``audit_report`` of a cell
   with no capture is INCONCLUSIVE_TOOLING: the report's ``audit_clean`` check reads WARN for
   the DOWNGRADED cell and ERROR for the INCONCLUSIVE one, the capture's check ERROR for the
   refused one;
3. the automation sensor re-materializes ``audit_summary`` after those reports, without anyone
   launching it: its status grid is an image on the page and it is not stale;
4. the anchor's learning curve is a picture on the cell's ``s22a1_anchor`` page;
5. after a candle of ``UNIUSDC`` changes, an observation of ``market_bars`` (what the
   observation schedule runs) flags the cell's capture and report out of date, and no
   automation launches a capture for it.

Full-page screenshots are kept under ``test-artifacts/ui/``. Needs Debian's chromium at
/usr/bin/chromium (``.ci/install-browser``) and playwright (the ``dev`` extra); ``playwright
install`` is never called.
"""

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import pandas as pd
import pytest

from diag_assets.core.names import (
    APPROVED_COLD_AUDIT_JOB,
    AUDIT_JOB,
    AUDIT_REPORT,
    AUDIT_SUMMARY,
    AUTOMATION_SENSOR,
    CAPTURED_FOLD,
    COLD_CAPTURE_APPROVAL_CHECK,
    LEARNING_CURVE_IMAGE,
    LIGHT_AUDIT_JOB,
    MARKET_BARS,
    MARKET_DATA_JOB,
    REPORT_CLEAN_CHECK,
    S22A1_ANCHOR,
    S40_VERDICT,
    STATUS_GRID_KEY,
    SYMBOLS_PARTITIONS,
)
from resources.market_data import SyntheticMarketDataResource
from tests.e2e.servers import UiServer, free_port, serving, tail, wait_for_success

pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    # Dagster's own per-dimension partition tags trip its tag-key lint; gql warns about the
    # call style DagsterGraphQLClient uses. Neither is this project's to fix.
    pytest.mark.filterwarnings("ignore:Non-compliant tag keys:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = PROJECT_ROOT / "test-artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 60_000
# The automation sensor evaluates once a minute: allow a few of its ticks.
AUTOMATION_TIMEOUT_S = 240

UNIVERSE = "defi_top5"
SYMBOL = "UNIUSDC"
SYMBOLS = {SYMBOL: "UNI_USDC-1h.feather", "AAVEUSDC": "AAVE_USDC-1h.feather"}
# Cells of SYMBOL: MultiPartitionKeys, dimensions sorted by name (fold, symbol).
AUDITED = f"fold-3|{SYMBOL}"  # captured with approval, CERTIFIED, then DOWNGRADED (light)
REFUSED = f"fold-2|{SYMBOL}"  # a plain audit of a cold cell: its capture is refused
INCONCLUSIVE = f"fold-1|{SYMBOL}"  # a report with no capture: INCONCLUSIVE_TOOLING
# A small capture; the s40 probe keeps its reference settings.
RUN_CONFIG = {"ops": {CAPTURED_FOLD: {"config": {"n_trials": 2, "max_rounds": 40}}}}

DAGSTER_YAML = "telemetry:\n  enabled: false\n"

LATEST_QUERY = """
query Latest($key: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $key}) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        runId
        partition
        timestamp
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on MarkdownMetadataEntry { mdStr }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}
"""

CHECKS_QUERY = """
query Checks($key: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $key}, checkName: $check, limit: 20) {
    partition
    status
    evaluation { severity description }
  }
}
"""

STALE_QUERY = """
query Stale($partition: String!) {
  assetNodes(assetKeys: [{path: ["captured_fold"]}, {path: ["s40_verdict"]},
                         {path: ["audit_report"]}]) {
    assetKey { path }
    staleStatus(partition: $partition)
    staleCauses(partition: $partition) { key { path } partitionKey reason }
  }
}
"""

SUMMARY_STALE_QUERY = """
query { assetNodes(assetKeys: [{path: ["audit_summary"]}]) { staleStatus } }
"""

RUNS_QUERY = """
query Runs($after: Float!) {
  runsOrError(filter: {createdAfter: $after}) {
    ... on Runs { results { runId jobName status assetSelection { path } tags { key value } } }
  }
}
"""


def _write_candles(folder: Path) -> None:
    """The synthetic defi_top5 bars of SYMBOLS as freqtrade-style candle files."""
    folder.mkdir(parents=True)
    source = SyntheticMarketDataResource().source()
    for symbol, name in SYMBOLS.items():
        source.load(symbol).frame.to_feather(folder / name)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UiServer, Path]]:
    """``dagster dev`` (webserver and daemon) over a new instance; yields it and the candles."""
    root = tmp_path_factory.mktemp("operator_ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    (root / "home").mkdir()
    candles = root / "candles"
    _write_candles(candles)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(SYMBOLS_PARTITIONS, sorted(SYMBOLS))
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin')}",
        "HOME": str(root / "home"),
        "DAGSTER_HOME": str(home),
        "DIAG_STORAGE_DIR": str(root / "artifacts"),
        "DIAG_REQUESTS_DIR": str(root / "requests"),
        "DIAG_MARKET_DATA_DIR": str(candles),
        "DIAG_UNIVERSE": UNIVERSE,
        "DIAG_TIMEFRAME": "1h",
    }
    port = free_port()
    log = root / "dagster_dev.log"
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with serving(command, PROJECT_ROOT, env, log, port) as server:
        yield server, candles


def _partition_tags(partition: str) -> dict[str, str]:
    fold, symbol = partition.split("|")
    return {
        "dagster/partition": partition,
        "dagster/partition/fold": fold,
        "dagster/partition/symbol": symbol,
    }


def _launch(server: UiServer, job: str, partition: str | None, **kwargs: Any) -> str:
    tags = _partition_tags(partition) if partition else {}
    return server.client().submit_job_execution(job, tags=tags, **kwargs)


def _latest(server: UiServer, asset: str, partition: str | None = None) -> dict[str, Any] | None:
    variables = {"key": [asset], "partitions": [partition] if partition else None}
    found = server.graphql(LATEST_QUERY, variables)["assetOrError"]
    assert found["__typename"] == "Asset", found
    materializations = found["assetMaterializations"]
    return materializations[0] if materializations else None


def _entries(materialization: dict[str, Any]) -> dict[str, Any]:
    """Text, Markdown and int entries by label."""
    entries = materialization["metadataEntries"]
    values = ("text", "mdStr", "intValue")
    return {e["label"]: next((e[v] for v in values if e.get(v) is not None), None) for e in entries}


def _check_executions(server: UiServer, asset: str, check: str) -> dict[str, dict[str, Any]]:
    """The latest execution of ``check`` per partition."""
    executions = server.graphql(CHECKS_QUERY, {"key": [asset], "check": check})
    latest: dict[str, dict[str, Any]] = {}
    for execution in executions["assetCheckExecutions"]:  # newest first
        latest.setdefault(execution["partition"], execution)
    return latest


def _wait_for(what: str, server: UiServer, probe: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s:.0f} s:\n{tail(server.log)}")
        time.sleep(3)


@contextmanager
def _page(server: UiServer, path: str) -> Iterator[tuple[Any, Any]]:
    """A headless Chromium page on ``path`` of the UI, the welcome dialog dismissed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run .ci/install-browser to install chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(f"{server.url}{path}", wait_until="domcontentloaded")
            yield sync_api, page
        finally:
            browser.close()


def _dismiss_welcome(sync_api: Any, page: Any) -> None:
    """A new instance greets a local user with "Join the Dagster community": skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5_000)
        skip.click()
        skip.wait_for(state="hidden", timeout=10_000)
    except sync_api.TimeoutError:
        pass
    sync_api.expect(page.get_by_text("Join the Dagster community")).to_be_hidden()


def _screenshot(page: Any, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def _partition_page(asset: str, partition: str, view: str = "partitions") -> str:
    return f"/assets/{asset}?view={view}&partition={quote(partition, safe='')}"


def _metadata_row(page: Any, label: str) -> Any:
    return page.locator("tr").filter(has=page.get_by_text(label, exact=True)).first


def _shown_image(sync_api: Any, page: Any, row: Any) -> int:
    """Open the row's Markdown (an image is too long to show inline); the image's width."""
    row.get_by_text("[Show Markdown]").click()
    image = page.get_by_role("dialog").locator("img[src^='data:image/png']").first
    sync_api.expect(image).to_be_visible()
    return image.evaluate("img => img.complete ? img.naturalWidth : 0")


def _see_certification(server: UiServer, certification: str) -> None:
    with _page(server, _partition_page(S40_VERDICT, AUDITED)) as (sync_api, page):
        row = _metadata_row(page, "certification")
        sync_api.expect(row).to_be_visible()
        _dismiss_welcome(sync_api, page)
        sync_api.expect(row.get_by_text(certification, exact=True)).to_be_visible()
        _screenshot(page, f"s40_verdict_{certification}")


# The operator's day, in order: each test starts from the state the one before it left.


def test_the_approval_path_captures_a_cold_cell_without_a_typed_tag(ui):
    server, _ = ui
    assert {APPROVED_COLD_AUDIT_JOB, AUDIT_JOB, LIGHT_AUDIT_JOB, MARKET_DATA_JOB} <= server.jobs
    # Observe the bars first, as the observation schedule does, so captures record them.
    wait_for_success(server, _launch(server, MARKET_DATA_JOB, None))
    run_id = _launch(server, APPROVED_COLD_AUDIT_JOB, AUDITED, run_config=RUN_CONFIG)
    wait_for_success(server, run_id)
    verdict = _latest(server, S40_VERDICT, AUDITED)
    assert verdict is not None and verdict["runId"] == run_id
    assert _entries(verdict)["certification"] == "CERTIFIED"
    assert _entries(verdict)["s22a1_crossref_status"] in {"CONSISTENT", "INCONSISTENT"}
    _see_certification(server, "CERTIFIED")


def test_a_light_audit_of_the_warm_cell_is_downgraded(ui):
    server, _ = ui
    run_id = _launch(server, LIGHT_AUDIT_JOB, AUDITED, run_config=RUN_CONFIG)
    wait_for_success(server, run_id)
    verdict = _latest(server, S40_VERDICT, AUDITED)
    assert verdict is not None and verdict["runId"] == run_id
    assert _entries(verdict)["certification"] == "DOWNGRADED"
    assert _entries(verdict)["s22a1_crossref_status"] == "SKIPPED"
    _see_certification(server, "DOWNGRADED")


def test_the_checks_show_which_cells_need_attention(ui):
    server, _ = ui
    # A plain audit of a cold cell: the capture is refused, the run itself does not fail.
    wait_for_success(server, _launch(server, AUDIT_JOB, REFUSED, run_config=RUN_CONFIG))
    # The report of a cell that has no capture: INCONCLUSIVE_TOOLING.
    report_run = _launch(server, "__ASSET_JOB", INCONCLUSIVE, asset_selection=[AUDIT_REPORT])
    wait_for_success(server, report_run)

    clean = _check_executions(server, AUDIT_REPORT, REPORT_CLEAN_CHECK)
    downgraded, inconclusive = clean[AUDITED], clean[INCONCLUSIVE]
    assert downgraded["status"] == "FAILED"
    assert downgraded["evaluation"]["severity"] == "WARN"
    assert downgraded["evaluation"]["description"].startswith("DOWNGRADED")
    assert inconclusive["status"] == "FAILED"
    assert inconclusive["evaluation"]["severity"] == "ERROR"
    assert inconclusive["evaluation"]["description"].startswith("INCONCLUSIVE_TOOLING")
    approval = _check_executions(server, CAPTURED_FOLD, COLD_CAPTURE_APPROVAL_CHECK)
    assert approval[REFUSED]["status"] == "FAILED"
    assert approval[REFUSED]["evaluation"]["severity"] == "ERROR"
    assert APPROVED_COLD_AUDIT_JOB in approval[REFUSED]["evaluation"]["description"]
    assert approval[AUDITED]["status"] == "SUCCEEDED"

    with _page(server, f"/assets/{AUDIT_REPORT}?view=checks") as (sync_api, page):
        sync_api.expect(page.get_by_text(REPORT_CLEAN_CHECK).first).to_be_visible()
        _dismiss_welcome(sync_api, page)
        _screenshot(page, "audit_report_checks")
        _check_partitions(sync_api, page, "audit_report_check_partitions")
    with _page(server, _partition_page(AUDIT_REPORT, INCONCLUSIVE)) as (sync_api, page):
        sync_api.expect(_metadata_row(page, "certification")).to_be_visible()
        _dismiss_welcome(sync_api, page)
        _screenshot(page, "audit_report_inconclusive_cell")
    with _page(server, f"/assets/{CAPTURED_FOLD}?view=checks") as (sync_api, page):
        sync_api.expect(page.get_by_text(COLD_CAPTURE_APPROVAL_CHECK).first).to_be_visible()
        _dismiss_welcome(sync_api, page)
        _check_partitions(sync_api, page, "captured_fold_check_partitions")


def _check_partitions(sync_api: Any, page: Any, name: str) -> None:
    """The selected check's partitions tab: which cells passed and which failed."""
    page.get_by_role("tab", name="Partitions").last.click()
    sync_api.expect(page.get_by_text("Failed").first).to_be_visible()
    _screenshot(page, name)


def test_the_summary_is_refreshed_by_automation_and_shows_a_grid(ui):
    server, _ = ui
    report = _latest(server, AUDIT_REPORT, INCONCLUSIVE)
    assert report is not None
    written = float(report["timestamp"])

    def refreshed() -> dict[str, Any] | None:
        summary = _latest(server, AUDIT_SUMMARY)
        return summary if summary and float(summary["timestamp"]) > written else None

    # Nobody launches the summary: the automation sensor (running by default) does.
    summary = _wait_for(
        "audit_summary was not re-materialized after the last report",
        server,
        refreshed,
        AUTOMATION_TIMEOUT_S,
    )
    (run,) = [
        r
        for r in server.graphql(RUNS_QUERY, {"after": written / 1000})["runsOrError"]["results"]
        if r["runId"] == summary["runId"]
    ]
    assert {"key": "dagster/sensor_name", "value": AUTOMATION_SENSOR} in run["tags"]
    entries = _entries(summary)
    assert (
        entries[STATUS_GRID_KEY].startswith("![")
        and "](data:image/png;base64," in (entries[STATUS_GRID_KEY])
    )
    # Every cell of the two symbols, each in one status: the three of this day and the rest.
    assert entries["cells"] == 2 * 5
    counts = ("certified", "downgraded", "inconclusive_tooling", "refused", "not_audited")
    assert [entries[c] for c in counts] == [0, 1, 1, 1, 7]
    (node,) = server.graphql(SUMMARY_STALE_QUERY)["assetNodes"]
    assert node["staleStatus"] == "FRESH"

    with _page(server, f"/assets/{AUDIT_SUMMARY}?view=events") as (sync_api, page):
        row = _metadata_row(page, STATUS_GRID_KEY)
        sync_api.expect(row).to_be_visible()
        _dismiss_welcome(sync_api, page)
        _screenshot(page, "audit_summary")
        assert _shown_image(sync_api, page, row) > 300
        _screenshot(page, "audit_summary_status_grid")


def test_the_anchor_learning_curve_is_a_picture(ui):
    server, _ = ui
    path = _partition_page(S22A1_ANCHOR, AUDITED)
    with _page(server, path) as (sync_api, page):
        row = _metadata_row(page, LEARNING_CURVE_IMAGE)
        sync_api.expect(row).to_be_visible()
        _dismiss_welcome(sync_api, page)
        assert _shown_image(sync_api, page, row) > 300
        _screenshot(page, "s22a1_anchor_learning_curve")


def test_changed_candles_flag_the_cell_out_of_date_and_nothing_captures(ui):
    server, candles = ui
    fresh = {n["assetKey"]["path"][-1]: n for n in _stale(server, AUDITED)}
    assert fresh[CAPTURED_FOLD]["staleStatus"] == "FRESH", fresh

    # One candle of the symbol changes (a corrected volume), as an exchange re-publishes it.
    path = candles / SYMBOLS[SYMBOL]
    frame = pd.read_feather(path)
    frame.loc[frame.index[-1], "volume"] = frame["volume"].iloc[-1] * 1.5
    frame.to_feather(path)
    changed_at = time.time()
    wait_for_success(server, _launch(server, MARKET_DATA_JOB, None))  # what the schedule runs

    nodes = {n["assetKey"]["path"][-1]: n for n in _stale(server, AUDITED)}
    for asset in (CAPTURED_FOLD, S40_VERDICT, AUDIT_REPORT):
        assert nodes[asset]["staleStatus"] == "STALE", nodes[asset]
        causes = {(tuple(c["key"]["path"]), c["partitionKey"]) for c in nodes[asset]["staleCauses"]}
        assert ((MARKET_BARS,), SYMBOL) in causes, nodes[asset]["staleCauses"]

    with _page(server, _partition_page(CAPTURED_FOLD, AUDITED)) as (sync_api, page):
        sync_api.expect(page.get_by_text("Unsynced").first).to_be_visible()
        _dismiss_welcome(sync_api, page)
        _screenshot(page, "captured_fold_out_of_date")

    # The automation sensor evaluates after the change and launches no capture.
    ticked = lambda: _ticked(server, changed_at)  # noqa: E731
    _wait_for("the automation sensor did not tick", server, ticked, 150)
    runs = server.graphql(RUNS_QUERY, {"after": changed_at})["runsOrError"]["results"]
    captures = [
        run for run in runs if [CAPTURED_FOLD] in [a["path"] for a in run["assetSelection"] or []]
    ]
    assert not captures, captures


def _stale(server: UiServer, partition: str) -> list[dict[str, Any]]:
    return server.graphql(STALE_QUERY, {"partition": partition})["assetNodes"]


TICKS_QUERY = """
query Ticks($name: String!) {
  sensorOrError(sensorSelector: {repositoryName: "__repository__",
      repositoryLocationName: "diag_harness", sensorName: $name}) {
    ... on Sensor { sensorState { ticks(limit: 1) { timestamp status } } }
  }
}
"""


def _ticked(server: UiServer, after: float) -> bool:
    sensor = server.graphql(TICKS_QUERY, {"name": AUTOMATION_SENSOR})["sensorOrError"]
    ticks = sensor["sensorState"]["ticks"]
    return bool(ticks) and ticks[0]["timestamp"] > after + 1
