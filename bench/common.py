"""Pieces both benchmarks use: report formatting, throwaway databases, child processes."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import platform
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier

# ---- report ------------------------------------------------------------------------------


def out(line: str = "") -> None:
    print(line, flush=True)


def section(title: str) -> None:
    out()
    out(f"-- {title} ".ljust(92, "-"))


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 1e3:,.1f} ms"


@dataclass
class Row:
    figure: str
    value: str
    target: str
    passed: bool | None


def print_summary(rows: list[Row], started: float) -> None:
    section("Summary (informational: the exit status does not depend on it)")
    width = max(len(r.figure) for r in rows)
    out(f"  {'figure':<{width}}  {'measured':>15}  {'target':>18}  result")
    for r in rows:
        verdict = {True: "PASS", False: "MISS", None: ""}[r.passed]
        out(f"  {r.figure:<{width}}  {r.value:>15}  {r.target:>18}  {verdict}")
    out()
    out(f"  total benchmark time {time.perf_counter() - started:.0f}s")


# ---- the machine and the servers ---------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def background_load() -> float:
    """Cores busy over one second before the benchmark starts (ideally about 0)."""
    import psutil

    return float(psutil.cpu_percent(interval=1.0)) / 100 * (os.cpu_count() or 1)


def server_facts(database_url: str) -> dict[str, str]:
    names = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
    )
    facts: dict[str, str] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in names:
            row = conn.execute(SQL("SHOW {}").format(Identifier(name))).fetchone()
            facts[name] = str(row[0]) if row else "?"
        facts["database"] = conn.info.dbname
    return facts


def masked(url: str) -> str:
    """A database or Redis URL fit to print: the password replaced."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        parts = urlsplit(url)
        return url.replace(parts.password, "***") if parts.password else url
    params = conninfo_to_dict(url)
    if params.get("password"):
        params["password"] = "***"
    return make_conninfo("", **params)


def with_database(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new ``kairos_bench_<random>`` database, dropped on exit."""
    name = f"kairos_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(SQL("CREATE DATABASE {}").format(Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(name)))


# ---- processes -----------------------------------------------------------------------------


@contextmanager
def child_process(target: Callable[..., None], *args: Any) -> Iterator[Any]:
    """A spawned process (fresh interpreter, own GIL), stopped with SIGTERM on exit."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    try:
        yield process
    finally:
        process.terminate()
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join(5)


def wait_http(url: str, process: Any, *, method: str = "GET", timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (below 500), failing fast if its process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError(f"the process serving {url} exited with code {process.exitcode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.request(method, url, timeout=1).status_code < 500:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
