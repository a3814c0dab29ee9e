"""The Sandbox protocol: where a task's agent and its repository live, isolated."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Paths as the agent sees them inside every sandbox.
REPO_DIR = "/sandbox/repo"
HOME_DIR = "/sandbox/home"
TOOLS_DIR = "/sandbox/tools"


class SandboxUnavailable(RuntimeError):
    """This machine cannot make sandboxes; the message says how to fix it."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class Sandbox(Protocol):
    root: Path  # on the host: holds repo/ and home/

    @property
    def repo(self) -> Path: ...

    @property
    def home(self) -> Path: ...

    async def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 300
    ) -> CommandResult:
        """Run a command inside, in the repo, and wait for it."""
        ...

    async def start(
        self, argv: list[str], env: dict[str, str], log_path: Path
    ) -> asyncio.subprocess.Process:
        """Start a long-running process inside; it dies with the worker."""
        ...


class SandboxProvider(Protocol):
    def check(self) -> None:
        """Raise SandboxUnavailable when sandboxes cannot be made here."""
        ...

    def create(self, root: Path) -> Sandbox: ...

    def open(self, root: Path) -> Sandbox:
        """The sandbox at `root`, made earlier (by this machine)."""
        ...

    async def destroy(self, root: Path) -> None: ...
