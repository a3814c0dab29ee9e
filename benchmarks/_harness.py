"""What every benchmark needs: a scratch PostgreSQL, server processes, a load loop."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from pgserver.postgres_server import get_server

from outrider.migrations import upgrade_to_head

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh embedded PostgreSQL, migrated; yields its SQLAlchemy URL."""
    with tempfile.TemporaryDirectory(prefix="outrider-bench-") as directory:
        server: Any = get_server(Path(directory) / "pg", cleanup_mode="stop")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "bench"')
        url = str(server.get_uri("bench")).replace("postgresql://", "postgresql+psycopg://", 1)
        upgrade_to_head(url)
        try:
            yield url
        finally:
            server.cleanup()


@contextmanager
def server_process(args: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"server {args} did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 GET; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def load(
    url: str, headers: dict[str, str], concurrency: int, seconds: float, label: str
) -> LoadResult:
    """Keep `concurrency` keep-alive connections busy for `seconds`, a progress line a second.

    A minimal HTTP/1.1 client on asyncio streams: httpx tops out near 150 requests a
    second at 50 connections here, which would measure the client, not the server.
    """
    parsed = httpx.URL(url)
    lines = [f"GET {parsed.raw_path.decode()} HTTP/1.1", f"Host: {parsed.netloc.decode()}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                if await _get(reader, writer, request) == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
        finally:
            writer.close()

    async def progress() -> None:
        while time.monotonic() < stop_at:
            await asyncio.sleep(1)
            left = max(0.0, stop_at - time.monotonic())
            print(
                f"\r  {label}: {len(latencies)} requests, {left:4.1f} s left ", end="", flush=True
            )

    started = time.monotonic()
    reporter = asyncio.create_task(progress())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    reporter.cancel()
    print()
    return LoadResult(len(latencies), errors, elapsed, latencies)
