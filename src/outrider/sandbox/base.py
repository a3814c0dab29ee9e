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


@dataclass(frozen=True)
class AgentPaths:
    """Where the repo, home and tools are, as processes inside the sandbox see them."""

    repo: str
    home: str
    tools: str


SANDBOXED_PATHS = AgentPaths(REPO_DIR, HOME_DIR, TOOLS_DIR)


def agent_base_env(paths: AgentPaths) -> dict[str, str]:
    """The whole environment a sandboxed process starts from: nothing of the worker's."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": paths.home,
        "USER": "agent",
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": f"{paths.home}/.config",
        "XDG_DATA_HOME": f"{paths.home}/.local/share",
        "XDG_STATE_HOME": f"{paths.home}/.local/state",
        "XDG_CACHE_HOME": f"{paths.home}/.cache",
        "GIT_TERMINAL_PROMPT": "0",
    }


class Sandbox(Protocol):
    root: Path  # on the host: holds repo/ and home/
    paths: AgentPaths

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
    """Makes sandboxes: bubblewrap (the default) or none (OUTRIDER_SANDBOX=none, unsafe)."""

    def check(self) -> None:
        """Raise SandboxUnavailable when sandboxes cannot be made here."""
        ...

    def create(self, root: Path) -> Sandbox: ...

    def open(self, root: Path) -> Sandbox:
        """The sandbox at `root`, made earlier (by this machine)."""
        ...

    async def destroy(self, root: Path) -> None: ...
