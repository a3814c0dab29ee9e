"""OUTRIDER_SANDBOX=none: the agent runs as the worker's own user, with no isolation.

Unsafe, and only for machines without bubblewrap that run trusted prompts on trusted
repositories: the agent can read everything the worker can (OUTRIDER_HOME, the database
password, other tasks). It keeps what needs no kernel support: its own directory as the
working directory and home, a cleared environment, rlimits and its own session.
"""

from __future__ import annotations

import os
from pathlib import Path

from outrider.sandbox.base import AgentPaths, agent_base_env
from outrider.sandbox.process import DirectoryProvider, ProcessSandbox


class UnsandboxedSandbox(ProcessSandbox):
    def __init__(self, root: Path, tools: Path, memory_mb: int, max_processes: int) -> None:
        super().__init__(root, tools, memory_mb, max_processes)
        self.paths = AgentPaths(str(self.repo), str(self.home), str(tools.resolve()))

    def _launch(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        base = agent_base_env(self.paths)
        base["TMPDIR"] = str(self.root / "tmp")
        base["PATH"] = os.environ.get("PATH", base["PATH"])
        return argv, {**base, **env}


class UnsandboxedProvider(DirectoryProvider):
    sandbox_class = UnsandboxedSandbox

    def check(self) -> None:
        """Always possible; that it is unsafe is the operator's explicit choice."""

    def create(self, root: Path) -> ProcessSandbox:
        sandbox = super().create(root)
        (root / "tmp").mkdir(exist_ok=True)
        return sandbox
