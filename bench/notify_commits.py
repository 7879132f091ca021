"""Durable commits of the locking UPDATE, with and without its NOTIFY (migration 0005).

``make bench`` runs PostgreSQL with fsync off, as benchmarks of this kind do; there a NOTIFY
costs little. A transaction that notifies takes PostgreSQL's cluster-wide lock that puts
notifying commits in order, and holds it through its commit: with durable commits
(synchronous_commit on, as in production) every notifying commit waits for the one before to
reach the disk. This script measures that: 8 connections, each committing the service's
locking UPDATE (bump the version, RETURNING the announcement) one transaction after another,
on a throwaway cluster with PostgreSQL's durable defaults.

    .venv/bin/python bench/notify_commits.py      (make bench-commits)

Variants: the NOTIFY sent by every write (the service before 0005), ``announce_change`` with
no listener registered (no subscriber anywhere), the same with one registered, and no
announcement at all (SUBSCRIPTIONS=false).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import asyncpg
import psycopg
import run
import uvloop
from dataset import load_base_data

CONNECTIONS = 8
SECONDS = float(os.environ.get("BENCH_DURATION", "4"))
ROUNDS = int(os.environ.get("BENCH_REPEAT", "3"))

PAYLOAD = (
    "opportunity.id::text || ' ' || "
    "(extract(epoch from opportunity.modified_at) * 1000000)::bigint::text"
)
LOCK = (
    "UPDATE opportunity SET version = version + 1, modified_at = now(), modified_by = $2 "
    "WHERE id = $1 RETURNING id, version"
)
VARIANTS = {
    "NOTIFY on every write (before 0005)": f"{LOCK}, pg_notify('gql_service_changes', {PAYLOAD})",
    "announce_change, no listener": f"{LOCK}, announce_change('gql_service_changes', {PAYLOAD})",
    "announce_change, a listener": f"{LOCK}, announce_change('gql_service_changes', {PAYLOAD})",
    "no announcement": LOCK,
}


class DurableCluster(run.StatsCluster):
    """PostgreSQL's defaults for durability: fsync, synchronous_commit, full_page_writes."""

    def start(self) -> None:
        options = (
            f"-c listen_addresses={run.HOST} -p {self.port} -k {self.root} "
            "-c max_connections=50 -c shared_buffers=256MB"
        )
        self._pg_ctl("-l", str(self.log), "-w", "-o", options, "start")


async def commits_per_second(connections: list[asyncpg.Connection], sql: str) -> float:
    count = 0
    stop = time.perf_counter() + SECONDS

    async def write(first: int, connection: asyncpg.Connection) -> None:
        nonlocal count
        pk = first
        while time.perf_counter() < stop:
            async with connection.transaction():
                await connection.fetchrow(sql, pk, "bench")
            pk = first + (pk - first + 1) % 1000
            count += 1

    await asyncio.gather(
        *(write(1 + n * 1000, connection) for n, connection in enumerate(connections))
    )
    return count / SECONDS


async def measure(dsn: str) -> dict[str, list[float]]:
    connections = [await asyncpg.connect(dsn) for _ in range(CONNECTIONS)]
    listener = await asyncpg.connect(dsn)
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(ROUNDS):
        for name, sql in VARIANTS.items():
            registered = name.endswith("a listener")
            if registered:
                await listener.execute("LISTEN gql_service_changes")
                await listener.execute(
                    "INSERT INTO announcement_listener (pid, since) "
                    "VALUES (pg_backend_pid(), now())"
                )
            results[name].append(await commits_per_second(connections, sql))
            if registered:
                await listener.execute("DELETE FROM announcement_listener")
                await listener.execute("UNLISTEN *")
    return results


def main() -> None:
    with run.cluster(DurableCluster) as cluster:
        with psycopg.connect(run.dsn(cluster.port, "postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE bench_commits")
        run.cli(run.sqlalchemy_url(cluster.port, "bench_commits"), "migrate")
        load_base_data(run.dsn(cluster.port, "bench_commits"))
        results = uvloop.run(measure(run.dsn(cluster.port, "bench_commits")))
    print(f"{CONNECTIONS} connections, durable commits, medians of {ROUNDS} runs of {SECONDS} s:")
    for name, rates in results.items():
        low, high = min(rates), max(rates)
        print(f"  {name:38s} {statistics.median(rates):7,.0f} commits/s ({low:,.0f}-{high:,.0f})")


if __name__ == "__main__":
    main()
