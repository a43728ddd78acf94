"""A dagster-webserver (or ``dagster dev``) in a subprocess, and how tests talk to it."""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

SERVER_START_TIMEOUT_S = 90
RUN_TIMEOUT_S = 240

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation { repositories { name jobs { name } } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


RUN_ERRORS_QUERY = """
query RunErrors($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      eventConnection(limit: 5000) {
        events {
          __typename
          ... on MessageEvent { message stepKey level }
          ... on ErrorEvent { error { message } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class UiServer:
    """A running dagster-webserver and the jobs of its code location."""

    port: int
    jobs: frozenset[str]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no server log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen) -> None:
    """Terminate the webserver and everything it started (code server, run workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the same process group
    process.wait(timeout=10)


def wait_until_served(server: UiServer, process: subprocess.Popen) -> frozenset[str]:
    """Wait for /server_info, then for the code location to load; its job names."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {process.returncode}:\n{tail(server.log)}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"dagster-webserver did not answer {server.url}/server_info within "
                f"{SERVER_START_TIMEOUT_S} s:\n{tail(server.log)}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    while True:
        workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        entries = workspace["locationEntries"]
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the code location did not load within {SERVER_START_TIMEOUT_S} s")
        time.sleep(0.5)
    jobs: set[str] = set()
    for entry in entries:
        location = entry["locationOrLoadError"]
        if location["__typename"] == "PythonError":
            pytest.fail(
                f"code location {entry['name']} failed to load: {location['message']}\n"
                + "".join(location["stack"])
            )
        for repository in location["repositories"]:
            jobs.update(job["name"] for job in repository["jobs"])
    return frozenset(jobs)


def run_errors(server: UiServer, run_id: str) -> str:
    run = server.graphql(RUN_ERRORS_QUERY, {"runId": run_id})["runOrError"]
    if run["__typename"] != "Run":
        return str(run)
    lines = []
    for event in run["eventConnection"]["events"]:
        if event.get("level") == "ERROR" or event["__typename"].endswith("FailureEvent"):
            error = (event.get("error") or {}).get("message", "")
            lines.append(f"[{event.get('stepKey') or 'run'}] {event.get('message', '')} {error}")
    return "\n".join(lines) or f"no error event (status {run['status']})"


def wait_for_success(server: UiServer, run_id: str) -> float:
    client = server.client()
    started = time.monotonic()
    status = None
    while time.monotonic() - started < RUN_TIMEOUT_S:
        status = client.get_run_status(run_id)
        if status == dg.DagsterRunStatus.SUCCESS:
            return time.monotonic() - started
        if status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            pytest.fail(f"run {run_id} ended {status.value}:\n{run_errors(server, run_id)}")
        time.sleep(1)
    pytest.fail(
        f"run {run_id} still {status} after {RUN_TIMEOUT_S} s:\n{run_errors(server, run_id)}"
    )


@contextlib.contextmanager
def serving(command: list[str], cwd: Path, env: dict[str, str], log: Path, port: int):
    """Run ``command`` (a webserver on ``port``) until the block ends; yields the served UI.

    The process gets its own process group, so stopping it ends the code server and the run
    workers it started too.
    """
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server = UiServer(port=port, jobs=frozenset(), log=log)
        jobs = wait_until_served(server, process)
        yield UiServer(port=port, jobs=jobs, log=log)
    finally:
        stop(process)
