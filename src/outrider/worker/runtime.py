"""What worker jobs need, set up once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from outrider.config import Settings
from outrider.sandbox.base import SandboxProvider
from outrider.sandbox.bubblewrap import BubblewrapProvider
from outrider.sandbox.unsandboxed import UnsandboxedProvider


@dataclass
class WorkerRuntime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    sandboxes: SandboxProvider
    queue: str
    http: httpx.AsyncClient  # webhook deliveries; redirects are never followed


_current: WorkerRuntime | None = None


def sandbox_provider(settings: Settings) -> SandboxProvider:
    kind = UnsandboxedProvider if settings.sandbox == "none" else BubblewrapProvider
    return kind(settings.tools_dir, settings.sandbox_memory_mb, settings.sandbox_max_processes)


def install(runtime: WorkerRuntime) -> None:
    global _current
    _current = runtime


def current() -> WorkerRuntime:
    if _current is None:
        raise RuntimeError("worker runtime not installed")
    return _current
