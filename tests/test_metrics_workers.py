"""/metrics under several uvicorn workers: any worker's scrape shows every worker's values."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.subprocess_server import LiveServer, live_server

PROBE = "query WorkersProbe { __typename }"
REQUESTS = 20
POOL_SIZE = 3  # each worker's pool with the defaults and 2 workers


def worker_pids(directory: Path) -> set[int]:
    """Processes that wrote live gauges: the workers, and the supervisor (all zero)."""
    found = (re.fullmatch(r"gauge_livesum_(\d+)\.db", p.name) for p in directory.iterdir())
    return {int(m.group(1)) for m in found if m}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def scrape(server: LiveServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # A new connection each time: whichever worker accepts it answers.
    response = httpx.get(f"http://{server.host}:{server.port}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


PROBED_LABELS = {"operation": "WorkersProbe", "type": "query", "outcome": "ok"}
PROBED = ("gql_requests_total", frozenset(PROBED_LABELS.items()))
POOL = ("gql_db_pool_size", frozenset({"pool": "default"}.items()))


def test_every_scrape_sums_both_workers_and_forgets_a_dead_workers_gauges(
    tmp_path: Path, sqlite_template: Path
) -> None:
    database = tmp_path / "workers.sqlite3"
    shutil.copyfile(sqlite_template, database)
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"stale")  # a previous server's file
    with live_server(
        f"sqlite+aiosqlite:///{database}",
        tmp_path / "server.log",
        workers=2,
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        LOG_LEVEL="WARNING",
    ) as server:
        assert not (directory / "counter_1.db").exists()
        # Each worker sets its pool's size as it starts.
        wait_for(lambda: scrape(server)[POOL] == 2 * POOL_SIZE, "two workers")
        for _ in range(REQUESTS):
            response = httpx.post(
                f"http://{server.host}:{server.port}/graphql", json={"query": PROBE}, timeout=10
            )
            assert response.status_code == 200
        for _ in range(6):
            found = scrape(server)
            assert found[PROBED] == REQUESTS
            assert found[POOL] == 2 * POOL_SIZE

        victim = min(worker_pids(directory) - {server.process.pid})
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), "the worker to die")
        # The replacement worker counts once it has started; the dead one never again.
        wait_for(lambda: scrape(server)[POOL] == 2 * POOL_SIZE, "uvicorn to replace the worker")
        for _ in range(4):
            found = scrape(server)
            assert found[PROBED] == REQUESTS  # counters keep the dead worker's counts
            assert found[POOL] == 2 * POOL_SIZE  # gauges count live workers only
        assert victim not in worker_pids(directory)


def test_one_worker_counts_too_and_a_later_start_removes_the_old_directory(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    database = tmp_path / "one.sqlite3"
    shutil.copyfile(sqlite_template, database)
    url = f"sqlite+aiosqlite:///{database}"
    with live_server(url, tmp_path / "first.log", LOG_LEVEL="WARNING") as server:
        first = tmp_path / f"gql_service-metrics-{server.process.pid}"
        assert first.is_dir()
        response = httpx.post(
            f"http://{server.host}:{server.port}/graphql", json={"query": PROBE}, timeout=10
        )
        assert response.status_code == 200
        assert scrape(server)[PROBED] == 1
    assert first.is_dir()  # uvicorn re-raises SIGTERM: nothing runs after it
    with live_server(url, tmp_path / "second.log", LOG_LEVEL="WARNING") as server:
        assert not first.exists()
        assert (tmp_path / f"gql_service-metrics-{server.process.pid}").is_dir()
