"""Running a sandbox's commands as child processes: shared by every provider."""

from __future__ import annotations

import asyncio
import resource
import shutil
from pathlib import Path

from outrider.sandbox.base import AgentPaths, CommandResult


class ProcessSandbox:
    """A sandbox directory whose commands run as limited child processes of the worker.

    Providers say how a command is launched (`_launch`); the rest is the same.
    """

    paths: AgentPaths

    def __init__(self, root: Path, tools: Path, memory_mb: int, max_processes: int) -> None:
        self.root = root
        self._tools = tools
        self._memory_mb = memory_mb
        self._max_processes = max_processes

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def _launch(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """The host command line and environment that run `argv` inside."""
        raise NotImplementedError

    def _limits(self) -> None:
        # Runs in the child before exec. RLIMIT_NPROC binds only unprivileged users, and
        # an address-space cap would break runtimes that reserve large heaps (Bun), so
        # memory is capped through the data segment where the kernel honours it.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (self._max_processes, self._max_processes))
        data = self._memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))

    async def _spawn(
        self, argv: list[str], env: dict[str, str], stdout: int, stderr: int
    ) -> asyncio.subprocess.Process:
        command, environment = self._launch(argv, env)
        return await asyncio.create_subprocess_exec(
            *command,
            env=environment,
            cwd=self.repo,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=self._limits,
            start_new_session=True,
        )

    async def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 300
    ) -> CommandResult:
        pipe = asyncio.subprocess.PIPE
        process = await self._spawn(argv, env or {}, pipe, pipe)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return CommandResult(124, "", f"timed out after {timeout:.0f} s")
        return CommandResult(
            process.returncode or 0,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )

    async def start(
        self, argv: list[str], env: dict[str, str], log_path: Path
    ) -> asyncio.subprocess.Process:
        with log_path.open("ab") as log:
            return await self._spawn(argv, env, log.fileno(), log.fileno())


class DirectoryProvider:
    """Creates, opens and destroys sandbox directories; subclasses pick the sandbox kind."""

    sandbox_class: type[ProcessSandbox]

    def __init__(self, tools: Path, memory_mb: int, max_processes: int) -> None:
        self._tools = tools
        self._memory_mb = memory_mb
        self._max_processes = max_processes

    def create(self, root: Path) -> ProcessSandbox:
        for directory in (root / "repo", root / "home", root / "logs"):
            directory.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        return self.open(root)

    def open(self, root: Path) -> ProcessSandbox:
        return self.sandbox_class(root, self._tools, self._memory_mb, self._max_processes)

    async def destroy(self, root: Path) -> None:
        await asyncio.to_thread(shutil.rmtree, root, True)
