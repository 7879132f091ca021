"""`make bench`: the service against a raw asyncpg baseline, under wrk, on one PostgreSQL 15.

1. Starts a throwaway PostgreSQL 15 cluster (tests/postgres.py) with pg_stat_statements.
2. Creates database bench_template, migrates it with the app's migrations, loads the data set
   generated in SQL (bench/dataset.py) and issues an API key (`create-api-key`).
3. Copies the template into bench_service and bench_baseline (CREATE DATABASE ... TEMPLATE):
   both servers start from the same data, ids included.
4. Starts the service in production mode (GQL_ENV=production, API_KEYS_ENABLED=true,
   `python -m gql_service serve --workers N`) and bench/baseline.py (uvicorn, same N), checks
   that both answer R1 and R2 with the same data and the writes with the same payloads, and
   stops the baseline.
5. Starts both servers again and runs every scenario at every connection count with wrk
   (bench/load.lua) against the service and then, at once, the same against the baseline, so
   that each ratio compares two runs seconds apart. A write run closes a pool of fresh
   opportunities made just before it in that server's own database.
6. Writes bench/results/latest.md and bench/results/latest.png.

SQL statements per request: pg_stat_statements (reset before each run, summed over the server's
database afterwards, divided by wrk's completed requests). It counts every statement the server
sent, BEGIN, COMMIT, ROLLBACK and pool pings included (track_utility is on), and nothing else
runs on that database during a run.

Peak memory per worker: RSS of each worker process (/proc/PID/status VmRSS), sampled every
0.2 s while wrk runs; the largest sample of any worker.

Environment: BENCH_DURATION (seconds per run, default 10), BENCH_CONNECTIONS (default
"1,8,32"), BENCH_WORKERS (default: the number of cores), BENCH_SCENARIOS (e.g. "R1,W1"; default
all), BENCH_SERVERS (default "service,baseline").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from dataset import load_base_data, make_pool  # noqa: E402
from scenarios import OPERATIONS, SCENARIOS, Scenario, body_template, global_id  # noqa: E402

from tests.postgres import Cluster, find_pg_bin  # noqa: E402

RESULTS = BENCH / "results"
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,8,32").split(",")]
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
ONLY = {s for s in os.environ.get("BENCH_SCENARIOS", "").split(",") if s}
SERVERS = os.environ.get("BENCH_SERVERS", "service,baseline").split(",")
# A run of R1 at 8 connections this long, after the scenarios, watches each worker's memory.
SOAK = int(os.environ.get("BENCH_SOAK", "60"))
HOST = "127.0.0.1"
# Read targets for R1: one of each kind (see dataset.py: g % 10 is the class of opportunity g).
R1_IDS = list(range(1, 10_001, 7))
CHECK_IDS = [2, 4, 5, 6, 7, 8, 9, 12, 17, 30, 34, 1000, 9999, 10_000]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class StatsCluster(Cluster):
    """The suite's cluster, with pg_stat_statements loaded and room for every pool."""

    def start(self) -> None:
        options = (
            f"-c listen_addresses={HOST} -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top "
            "-c pg_stat_statements.track_utility=on -c shared_buffers=256MB"
        )
        self._pg_ctl("-l", str(self.log), "-w", "-o", options, "start")


@contextlib.contextmanager
def cluster(kind: type[StatsCluster] = StatsCluster) -> Iterator[StatsCluster]:
    """A throwaway cluster of ``kind`` on a free port, stopped and deleted afterwards."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise SystemExit("PostgreSQL 15 (initdb, pg_ctl) not found: apt-get install postgresql-15")
    root = Path(tempfile.mkdtemp(prefix="gql_bench_pg_"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    started = kind(pg_bin, root, free_port())
    try:
        started.init()
        started.start()
        try:
            yield started
        finally:
            started.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dsn(port: int, database: str) -> str:
    return f"postgresql://postgres@{HOST}:{port}/{database}"


def sqlalchemy_url(port: int, database: str) -> str:
    return f"postgresql+psycopg://postgres@{HOST}:{port}/{database}"


def cli(database_url: str, *args: str) -> str:
    environment = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", "gql_service", *args],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


# --- servers ---


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    database: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/graphql"

    def workers(self) -> list[int]:
        """The worker processes (uvicorn's spawned children), else the server process itself."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.process.pid and b"spawn_main" in command:
                found.append(int(entry.name))
        return found or [self.process.pid]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Its log's directory goes with it (each server start made one).
        shutil.rmtree(self.log.parent, ignore_errors=True)


def start_server(name: str, port: int, database: str, environment: dict[str, str]) -> Server:
    log = Path(tempfile.mkdtemp(prefix="gql_bench_")) / f"{name}.log"
    server_port = free_port()
    if name == "service":
        command = [
            sys.executable, "-m", "gql_service", "serve",
            "--host", HOST, "--port", str(server_port), "--workers", str(WORKERS),
        ]  # fmt: skip
        env = {
            **os.environ,
            "DATABASE_URL": sqlalchemy_url(port, database),
            "GQL_ENV": "production",
            "API_KEYS_ENABLED": "true",
            "LOG_LEVEL": "WARNING",
            **environment,
        }
    else:
        command = [
            sys.executable, "-m", "uvicorn", "baseline:app", "--app-dir", str(BENCH),
            "--host", HOST, "--port", str(server_port), "--workers", str(WORKERS),
            "--no-access-log", "--log-level", "warning", "--no-server-header",
        ]  # fmt: skip
        env = {**os.environ, "BASELINE_DSN": dsn(port, database), **environment}
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, server_port, process, database, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text()
            shutil.rmtree(log.parent, ignore_errors=True)
            raise SystemExit(f"{name} did not start:\n{output}")
        with contextlib.suppress(httpx.HTTPError):
            # Several tries, so that every worker is likely to have answered once.
            if httpx.post(server.url, json={"query": "{ __typename }"}).status_code in (200, 401):
                return server
        time.sleep(0.2)
    output = log.read_text()
    server.stop()
    raise SystemExit(f"{name} did not answer within 60 s:\n{output}")


def post(server: Server, token: str, operation: str, variables: dict[str, Any]) -> Any:
    response = httpx.post(
        server.url,
        json={"query": OPERATIONS[operation], "operationName": operation, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 200, (server.name, response.status_code, response.text)
    return response.json()


# --- the equality check ---


def equality_check(service: Server, baseline: Server, token: str, port: int) -> list[str]:
    """Both servers answer R1, R2 and each write with the same data; the checks made."""
    checks = []
    for pk in CHECK_IDS:
        variables = {"id": global_id("Opportunity", pk)}
        mine, theirs = (post(s, token, "R1", variables) for s in (service, baseline))
        same(mine.get("data"), theirs.get("data"), f"R1 opportunity {pk}")
        assert mine["data"]["opportunity"] is not None, pk
    checks.append(f"R1 on {len(CHECK_IDS)} opportunities of every kind: same data")
    mine, theirs = (post(s, token, "R2", {}) for s in (service, baseline))
    same(mine.get("data"), theirs.get("data"), "R2")
    assert len(mine["data"]["opportunities"]["nodes"]) == 50
    checks.append("R2 (50 opportunities, their quotes and histories): same data")
    missing = {"id": global_id("Opportunity", 999_999)}
    for scenario in ("W1", "W2", "W3"):
        mine, theirs = (post(s, token, scenario, missing) for s in (service, baseline))
        assert "errors" not in mine, mine
    for scenario, quotes in (("W1", 0), ("W2", 3), ("W2", 30), ("W3", 2)):
        # The same pool in both databases: both copies made the same ids.
        ids = [make_pool(dsn(port, s.database), "check", 1, quotes)[0] for s in (service, baseline)]
        assert ids[0] == ids[1], ids
        variables = {"id": global_id("Opportunity", ids[0])}
        mine, theirs = (post(s, token, scenario, variables) for s in (service, baseline))
        same(mine.get("data"), theirs.get("data"), f"{scenario} with {quotes} open quotes")
        payload = next(iter(mine["data"].values()))
        assert payload["errors"] == [], payload
        checks.append(f"{scenario} with {quotes} open quotes: same payload (ids included)")
    return checks


def same(mine: Any, theirs: Any, what: str) -> None:
    if mine != theirs:
        left = json.dumps(mine, indent=1, sort_keys=True).splitlines()
        right = json.dumps(theirs, indent=1, sort_keys=True).splitlines()
        import difflib

        diff = "\n".join(list(difflib.unified_diff(left, right, "service", "baseline"))[:60])
        raise SystemExit(f"equality check failed on {what}:\n{diff}")


# --- runs ---


@dataclass
class Run:
    server: str
    scenario: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    statements_per_request: float = 0.0
    peak_rss_mb: float = 0.0
    workers: int = 0
    exhausted: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class MemorySampler(threading.Thread):
    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.pids = server.workers()
        self.peak_kb = 0
        self.started = time.monotonic()
        # (seconds since start, pid, RSS kB), every 0.2 s.
        self.series: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for pid in self.pids:
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            kb = int(line.split()[1])
                            self.peak_kb = max(self.peak_kb, kb)
                            self.series.append((time.monotonic() - self.started, pid, kb))
            time.sleep(0.2)


@dataclass
class Soak:
    """Each worker's memory over one long R1 run: is it flat?"""

    seconds: int
    rps: float
    errors: int
    # Per worker: mean RSS (MB) over the run's first and last 10 seconds, and its peak.
    workers: list[tuple[float, float, float]] = field(default_factory=list)


def soak(server: Server, token: str, port: int) -> Soak:
    quiesce(port, server.database)
    sampler = MemorySampler(server)
    sampler.start()
    ids = [global_id("Opportunity", pk) for pk in R1_IDS]
    result = wrk(server, token, SCENARIOS[0], 8, ids, SOAK)
    sampler.stopping.set()
    sampler.join()
    end = max((t for t, _, _ in sampler.series), default=0.0)
    workers = []
    for pid in sampler.pids:
        mine = [(t, kb) for t, p, kb in sampler.series if p == pid]
        first = [kb for t, kb in mine if t <= 10] or [0]
        last = [kb for t, kb in mine if t >= end - 10] or [0]
        workers.append(
            (
                round(sum(first) / len(first) / 1024, 1),
                round(sum(last) / len(last) / 1024, 1),
                round(max(kb for _, kb in mine) / 1024, 1) if mine else 0.0,
            )
        )
    seconds = result["duration_us"] / 1e6
    return Soak(
        seconds=SOAK,
        rps=round(result["requests"] / seconds, 1) if seconds else 0.0,
        errors=int(result["errors"]) + int(result["socket_errors"]),
        workers=workers,
    )


def statements(port: int, database: str) -> int:
    with psycopg.connect(dsn(port, "postgres"), autocommit=True) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def quiesce(port: int, database: str, timeout_s: float = 120) -> None:
    """Wait until no statement runs on ``database``: requests still in flight when wrk stopped
    would otherwise count in the next run's statements and latency."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn(port, "postgres"), autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state <> 'idle'",
                (database,),
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.2)


def reset_statements(port: int) -> None:
    with psycopg.connect(dsn(port, "postgres"), autocommit=True) as connection:
        connection.execute("SELECT pg_stat_statements_reset()")


def wrk(
    server: Server, token: str, scenario: Scenario, connections: int, ids: list[str], seconds: int
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="gql_bench_wrk_"))
    body = work / "body.json"
    body.write_text(body_template(scenario.operation))
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    threads = 1 if connections == 1 else 2
    command = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", "30s", "-s", str(BENCH / "load.lua"), server.url, "--",
        str(body), str(ids_file) if ids else "-", token,
        "once" if scenario.write else "cycle", str(threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    shutil.rmtree(work, ignore_errors=True)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return result
    raise SystemExit(f"wrk failed:\n{done.stdout}\n{done.stderr}")


def measure(
    server: Server,
    token: str,
    port: int,
    scenario: Scenario,
    connections: int,
    during: contextlib.AbstractContextManager[object] | None = None,
) -> Run:
    """One wrk run of ``scenario``; ``during`` is entered around the load alone (not the
    making of a write scenario's fresh opportunities before it)."""
    ids: list[str]
    if scenario.write:
        pool = make_pool(
            dsn(port, server.database),
            f"{scenario.name}-{connections}",
            scenario.pool_per_second * DURATION,
            scenario.open_quotes,
        )
        ids = [global_id("Opportunity", pk) for pk in pool]
    elif scenario.operation == "R1":
        ids = [global_id("Opportunity", pk) for pk in R1_IDS]
    else:
        ids = []
    quiesce(port, server.database)
    reset_statements(port)
    sampler = MemorySampler(server)
    sampler.start()
    with during or contextlib.nullcontext():
        result = wrk(server, token, scenario, connections, ids, DURATION)
    sampler.stopping.set()
    sampler.join()
    sent = statements(port, server.database)
    requests = max(int(result["requests"]), 1)
    seconds = result["duration_us"] / 1e6
    return Run(
        server=server.name,
        scenario=scenario.name,
        connections=connections,
        requests=int(result["requests"]),
        seconds=round(seconds, 2),
        rps=round(result["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(result["p50_us"] / 1000, 2),
        p99_ms=round(result["p99_us"] / 1000, 2),
        errors=int(result["errors"]) + int(result["socket_errors"]),
        statements_per_request=round(sent / requests, 2),
        peak_rss_mb=round(sampler.peak_kb / 1024, 1),
        workers=len(sampler.pids),
        exhausted=bool(result["exhausted_threads"]),
        detail=result,
    )


def warm_up(server: Server, token: str) -> None:
    """A few seconds of R1 and R2, so that every worker has imported and cached what it needs."""
    for scenario in SCENARIOS[:2]:
        ids = [global_id("Opportunity", pk) for pk in R1_IDS]
        wrk(server, token, scenario, 4, ids, 2)


# --- report ---


def ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}" if theirs else "-"


def report(
    runs: list[Run],
    checks: list[str],
    counts: dict[str, int],
    elapsed: float,
    soaks: dict[str, Soak] | None = None,
) -> str:
    by_key = {(r.server, r.scenario, r.connections): r for r in runs}
    scenarios = [s for s in SCENARIOS if not ONLY or s.name in ONLY]
    lines = [
        "# Benchmark: the service against a raw SQL baseline",
        "",
        f"Generated by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{os.cpu_count()} cores, {WORKERS} workers per server, {DURATION} s per run, "
        f"PostgreSQL 15 (fsync off), wrk from the same machine. Total {elapsed / 60:.1f} min.",
        "",
        "Data: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()) + "; write runs close "
        "fresh opportunities made just before each run.",
        "",
        "Service: `python -m gql_service serve` with GQL_ENV=production, API_KEYS_ENABLED=true, "
        "an API key on every request. Baseline: bench/baseline.py (Starlette, asyncpg, no GraphQL, "
        "no ORM).",
        "",
        "Equality check before the load:",
        "",
        *[f"- {c}" for c in checks],
        "",
        "Columns: requests/s; p50 and p99 latency (ms); errors (non-200 responses, bodies with a "
        'non-empty `"errors"` list, socket errors); SQL statements per request '
        "(pg_stat_statements, the statements a client sends, BEGIN/COMMIT/pings included; "
        "not those a function runs: the service's closeOpportunity and closeQuotes, in W1, "
        "W2 and W3, are one call whose function runs the lock and the close); peak RSS of one "
        "worker (MB). "
        "ratio = service / baseline requests/s.",
        "",
        "| scenario | conns | service req/s | p50 | p99 | errors | stmts/req | RSS MB "
        "| baseline req/s | p50 | p99 | errors | stmts/req | RSS MB | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for connections in CONNECTIONS:
            cells = [scenario.name, str(connections)]
            pair = [by_key.get((s, scenario.name, connections)) for s in ("service", "baseline")]
            for run in pair:
                if run is None:
                    cells += ["-"] * 6
                    continue
                mark = "*" if run.exhausted else ""
                cells += [
                    f"{run.rps:,.0f}{mark}",
                    f"{run.p50_ms:.1f}",
                    f"{run.p99_ms:.1f}",
                    str(run.errors),
                    f"{run.statements_per_request:.1f}",
                    f"{run.peak_rss_mb:.0f}",
                ]
            mine, theirs = pair
            cells.append(ratio(mine.rps, theirs.rps) if mine and theirs else "-")
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "\\* the run used up its pool of fresh opportunities before the time was up; req/s is "
        "over the time it ran.",
        "",
        "Scenarios:",
        "",
        *[f"- {s.name}: {s.description}" for s in scenarios],
        "",
        "![throughput and latency](latest.png)",
        "",
    ]
    for name, soak in (soaks or {}).items():
        lines += [
            f"Memory over {soak.seconds} s of R1 at 8 connections ({name}: {soak.rps:,.0f} req/s, "
            f"{soak.errors} errors), per worker, mean RSS of the first and last 10 s and peak:",
            "",
            *[
                f"- worker {i + 1}: {first:.1f} MB -> {last:.1f} MB (peak {peak:.1f} MB)"
                for i, (first, last, peak) in enumerate(soak.workers)
            ],
            "",
        ]
    return "\n".join(lines)


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s.name for s in SCENARIOS if not ONLY or s.name in ONLY]
    labels = [f"{s}\n{c}c" for s in scenarios for c in CONNECTIONS]
    by_key = {(r.server, r.scenario, r.connections): r for r in runs}
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, len(labels) * 0.6), 8))
    width = 0.4
    positions = list(range(len(labels)))
    for offset, server in ((-width / 2, "service"), (width / 2, "baseline")):
        found = [by_key.get((server, s, c)) for s in scenarios for c in CONNECTIONS]
        top.bar(
            [p + offset for p in positions],
            [r.rps if r else 0 for r in found],
            width,
            label=server,
        )
        bottom.bar(
            [p + offset for p in positions],
            [r.p99_ms if r else 0 for r in found],
            width,
            label=server,
        )
    top.set_ylabel("requests/s")
    top.set_yscale("log")
    top.set_title("Throughput per scenario and connection count")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_yscale("log")
    bottom.set_title("p99 latency")
    for axes in (top, bottom):
        axes.set_xticks(positions)
        axes.set_xticklabels(labels, fontsize=7)
        axes.legend()
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (make bench does it)")
    started = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    with cluster() as pg:
        with psycopg.connect(dsn(pg.port, "postgres"), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.execute("CREATE DATABASE bench_template")
        template_url = sqlalchemy_url(pg.port, "bench_template")
        cli(template_url, "migrate")
        print("loading the data set ...", flush=True)
        counts = load_base_data(dsn(pg.port, "bench_template"))
        print(counts, flush=True)
        token = cli(
            template_url,
            "create-api-key", "--name", "bench", "--scopes", "opportunities:read",
            "opportunities:write",
        ).splitlines()[-1]  # fmt: skip
        with psycopg.connect(dsn(pg.port, "postgres"), autocommit=True) as connection:
            for copy in ("bench_service", "bench_baseline"):
                connection.execute(f"CREATE DATABASE {copy} TEMPLATE bench_template")

        service = start_server("service", pg.port, "bench_service", {})
        baseline = start_server("baseline", pg.port, "bench_baseline", {})
        try:
            checks = equality_check(service, baseline, token, pg.port)
        finally:
            baseline.stop()
            service.stop()
        for line in checks:
            print("equality:", line, flush=True)

        runs: list[Run] = []
        soaks: dict[str, Soak] = {}
        # Both servers up at once, each run of one followed by the same run of the other: this
        # machine's speed drifts over minutes, and a ratio of two runs seconds apart drifts less
        # than one of runs a whole series apart. The idle server costs no CPU.
        servers = [start_server(name, pg.port, f"bench_{name}", {}) for name in SERVERS]
        try:
            for server in servers:
                warm_up(server, token)
            for scenario in SCENARIOS:
                if ONLY and scenario.name not in ONLY:
                    continue
                for connections in CONNECTIONS:
                    for server in servers:
                        run = measure(server, token, pg.port, scenario, connections)
                        runs.append(run)
                        print(
                            f"{server.name:8s} {scenario.name:8s} c={connections:<3d} "
                            f"{run.rps:8.1f} req/s p50 {run.p50_ms:7.1f} ms p99 "
                            f"{run.p99_ms:7.1f} ms errors {run.errors} "
                            f"stmts/req {run.statements_per_request:.1f} "
                            f"rss {run.peak_rss_mb:.0f} MB",
                            flush=True,
                        )
            if SOAK and (not ONLY or "R1" in ONLY):
                for server in servers:
                    soaks[server.name] = soak(server, token, pg.port)
                    print(f"{server.name:8s} soak {soaks[server.name]}", flush=True)
        finally:
            for server in servers:
                server.stop()
    elapsed = time.monotonic() - started
    (RESULTS / "latest.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    (RESULTS / "latest.md").write_text(report(runs, checks, counts, elapsed, soaks))
    chart(runs, RESULTS / "latest.png")
    print(f"wrote {RESULTS / 'latest.md'} and latest.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
