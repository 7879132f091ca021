"""`make bench-ab`: the service of two source trees, in turn on one PostgreSQL, under wrk.

A `make bench` run measures the service and the baseline minutes apart, and on a shared machine
the speed of both drifts by a third between runs (the same code's W1 gave 249 and 357 req/s in
two full runs). To tell whether a change pays, this serves the service of BENCH_BASE (a git
revision, checked out into a temporary worktree) and of the working tree in turn, BENCH_REPEAT
times each, on the same cluster and data (bench/run.py's), and reports for each the median of
the requests per second, of the workers' CPU time per request (user + system, from
/proc/PID/stat) and of the PostgreSQL server's. Both trees run in this virtualenv, on the
working tree's schema.

Environment: BENCH_BASE (default HEAD~1), BENCH_REPEAT (default 6), BENCH_DURATION (seconds per
run, default 5), BENCH_SCENARIOS (default R1), BENCH_CONNECTIONS (one number, default 8),
BENCH_WORKERS (default: the number of cores). BENCH_BASE=baseline serves the raw baseline
(bench/baseline.py) in place of a second tree: how far the working tree's service is from it,
in CPU per request as well as in requests per second.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

os.environ.setdefault("BENCH_DURATION", "5")

import psycopg
import run
from dataset import load_base_data
from scenarios import SCENARIOS

BASE = os.environ.get("BENCH_BASE", "HEAD~1")
REPEAT = int(os.environ.get("BENCH_REPEAT", "6"))
ONLY = [s for s in os.environ.get("BENCH_SCENARIOS", "R1").split(",") if s]
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
TICKS = os.sysconf("SC_CLK_TCK")


def _error_kinds(detail: dict[str, object]) -> str:
    """A run's errors by kind, where it had any: GraphQL errors in 200s, other statuses, and
    wrk's socket errors (connect, read, write, time-out)."""
    kinds = {k: detail.get(k) for k in ("graphql_errors", "http_errors", "socket_errors")}
    if not any(kinds.values()):
        return ""
    return " (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")"


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """``revision`` checked out, detached, in a temporary directory."""
    path = Path(tempfile.mkdtemp(prefix="gql_bench_ab_")) / "tree"
    subprocess.run(
        ["git", "-C", str(run.ROOT), "worktree", "add", "--quiet", "--detach", str(path), revision],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(run.ROOT), "worktree", "remove", "--force", str(path)], check=False
        )
        shutil.rmtree(path.parent, ignore_errors=True)


def serve(tree: Path | None, port: int) -> run.Server:
    """The service of ``tree`` (``python -m`` imports from the working directory first), or
    the baseline for None."""
    if tree is None:
        return run.start_server("baseline", port, "bench_service", {})
    here = Path.cwd()
    os.chdir(tree)
    try:
        return run.start_server("service", port, "bench_service", {"PYTHONPATH": str(tree)})
    finally:
        os.chdir(here)


def cpu_seconds(pids: list[int], children: bool = False) -> float:
    """User and system CPU time the processes have used so far (with that of their children
    that have exited and been waited for, if ``children``)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a backend that exited since it was listed
        ticks += int(fields[11]) + int(fields[12])
        if children:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def database_cpu_seconds(data: Path) -> float:
    """CPU time of the PostgreSQL server of ``data``: the postmaster, its ended backends, and
    its live ones (the backends of the pools, whose work is most of it)."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    backends = [
        int(pid)
        for pid in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    ]
    return cpu_seconds([postmaster], children=True) + cpu_seconds(backends)


class CpuWindow:
    """The CPU time the workers and the database server spend while the block runs."""

    def __init__(self, workers: list[int], data: Path) -> None:
        self.workers = workers
        self.data = data
        self.each: list[float] = []  # per worker, seconds
        self.database = 0.0

    def __enter__(self) -> CpuWindow:
        self._before = [cpu_seconds([pid]) for pid in self.workers]
        self._database_before = database_cpu_seconds(self.data)
        return self

    def __exit__(self, *_: object) -> None:
        self.each = [
            cpu_seconds([pid]) - before
            for pid, before in zip(self.workers, self._before, strict=True)
        ]
        self.database = database_cpu_seconds(self.data) - self._database_before


def main() -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (make bench-ab does it)")
    scenarios = [s for s in SCENARIOS if s.name in ONLY]
    if not scenarios:
        raise SystemExit(f"no scenario named in BENCH_SCENARIOS={','.join(ONLY)}")
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with (
        nullcontext(None) if BASE == "baseline" else worktree(BASE) as base,
        run.cluster() as pg,
    ):
        first = "baseline" if base is None else f"base ({BASE})"
        trees: dict[str, Path | None] = {first: base, "working tree": run.ROOT}
        with psycopg.connect(run.dsn(pg.port, "postgres"), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.execute("CREATE DATABASE bench_service")
        url = run.sqlalchemy_url(pg.port, "bench_service")
        run.cli(url, "migrate")
        print("loading the data set ...", flush=True)
        load_base_data(run.dsn(pg.port, "bench_service"))
        token = run.cli(
            url,
            "create-api-key", "--name", "bench", "--scopes", "opportunities:read",
            "opportunities:write",
        ).splitlines()[-1]  # fmt: skip
        for repeat in range(REPEAT):
            for label, tree in trees.items():
                server = serve(tree, pg.port)
                try:
                    run.warm_up(server, token)
                    workers = server.workers()
                    for scenario in scenarios:
                        # (Around the load alone: making a write run's fresh opportunities
                        # costs the database the same whichever server then closes them.)
                        window = CpuWindow(workers, pg.data)
                        measured = run.measure(
                            server, token, pg.port, scenario, CONNECTIONS, during=window
                        )
                        each = window.each
                        requests = max(measured.requests, 1)
                        per_request = sum(each) / requests * 1e6
                        database_per_request = window.database / requests * 1e6
                        results.setdefault((scenario.name, label), []).append(
                            (measured.rps, per_request, database_per_request)
                        )
                        print(
                            f"{repeat + 1}/{REPEAT} {label:24s} {scenario.name:8s} "
                            f"{measured.rps:8.1f} req/s {per_request:7.0f} us CPU/request "
                            f"(database {database_per_request:4.0f}) "
                            f"p99 {measured.p99_ms:6.1f} ms errors {measured.errors}"
                            f"{_error_kinds(measured.detail)} "
                            f"workers' CPU s {' '.join(f'{e:.2f}' for e in each)}",
                            flush=True,
                        )
                finally:
                    server.stop()
    print(f"\nmedians of {REPEAT} runs of {run.DURATION} s at {CONNECTIONS} connections:")
    for (scenario_name, label), values in results.items():
        rps = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        database_cpu = statistics.median(v[2] for v in values)
        low, high = min(v[0] for v in values), max(v[0] for v in values)
        print(
            f"{scenario_name:8s} {label:24s} {rps:8.1f} req/s ({low:.0f}-{high:.0f}) "
            f"{cpu:7.0f} us CPU/request, the database's {database_cpu:4.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
