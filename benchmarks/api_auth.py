"""GET /api/v1/me with a valid key at 50 concurrent connections, beside the floor:
a bare FastAPI endpoint doing one primary-key SELECT on the same database.

Usage: python benchmarks/api_auth.py [--seconds 10] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import socket

from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks._harness import LoadResult, load, scratch_database, server_process
from outrider.accounts import service as accounts
from outrider.apikeys import service as apikeys
from outrider.db import create_engine, sessionmaker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def make_key(url: str) -> tuple[str, str]:
    engine = create_engine(url, pool_size=1)
    async with sessionmaker(engine)() as session, session.begin():
        assert isinstance(session, AsyncSession)
        user = await accounts.create_user(session, "bench@example.com", "benchmark password")
        _, raw = await apikeys.create_key(session, user.id, "bench")
    await engine.dispose()
    return str(user.id), raw


def line(label: str, result: LoadResult) -> str:
    return (
        f"{label:<34} {result.per_second:9.0f} req/s   p50 {result.p50:6.1f} ms   "
        f"p99 {result.percentile(0.99):6.1f} ms   errors {result.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    options = parser.parse_args()

    print("Starting a scratch PostgreSQL…")
    with scratch_database() as url:
        user_id, key = asyncio.run(make_key(url))
        env = {
            "DATABASE_URL": url,
            "OUTRIDER_SECRET_KEY": "bench",
            # The benchmark measures auth, not the limiter refusing it.
            "OUTRIDER_RATE_LIMIT_PER_MINUTE": "100000000",
            "OUTRIDER_LOG_LEVEL": "WARNING",
        }
        port = free_port()
        bare_args = ["benchmarks/_bare_select_app.py", str(port), url, user_id]
        with server_process(bare_args, port, env) as base:
            asyncio.run(load(f"{base}/user", {}, options.concurrency, 2, "warm-up (bare)"))
            bare = asyncio.run(
                load(f"{base}/user", {}, options.concurrency, options.seconds, "bare SELECT")
            )
        port = free_port()
        serve_args = ["-m", "outrider", "serve", "--port", str(port)]
        headers = {"Authorization": f"Bearer {key}"}
        with server_process(serve_args, port, env) as base:
            me_url = f"{base}/api/v1/me"
            asyncio.run(load(me_url, headers, options.concurrency, 2, "warm-up (/me)"))
            me = asyncio.run(
                load(me_url, headers, options.concurrency, options.seconds, "GET /api/v1/me")
            )

    print()
    print(f"{options.concurrency} concurrent connections, {options.seconds:.0f} s each")
    print(line("GET /api/v1/me (key auth)", me))
    print(line("baseline: bare FastAPI PK SELECT", bare))
    print(
        f"ratio /me vs baseline: throughput {me.per_second / bare.per_second:.2f}x, "
        f"p50 latency {me.p50 / bare.p50:.2f}x"
    )


if __name__ == "__main__":
    main()
