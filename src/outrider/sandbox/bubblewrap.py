"""Sandboxes made with bubblewrap: read-only system, writable repo and home, nothing else.

Inside: /usr and the few /etc files programs need, read-only; /sandbox/repo and
/sandbox/home writable; /sandbox/tools (OpenCode) read-only; a private /tmp, /proc and
/dev; its own pid, ipc and uts namespaces; no capabilities; it dies with its parent.
Other sandboxes, OUTRIDER_HOME and the host's home directories are simply not there.
The network is shared: the agent must reach its model and the git remote.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
from pathlib import Path

from outrider.sandbox.base import (
    HOME_DIR,
    REPO_DIR,
    TOOLS_DIR,
    CommandResult,
    SandboxUnavailable,
)

# /etc entries that programs (git, DNS, TLS, the shell) need; everything else stays out.
_ETC_ENTRIES = (
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "host.conf",
    "passwd",
    "group",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "gitconfig",
    "bash.bashrc",
    "profile",
    "inputrc",
    "terminfo",
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": HOME_DIR,
    "USER": "agent",
    "LANG": "C.UTF-8",
    "XDG_CONFIG_HOME": f"{HOME_DIR}/.config",
    "XDG_DATA_HOME": f"{HOME_DIR}/.local/share",
    "XDG_STATE_HOME": f"{HOME_DIR}/.local/state",
    "XDG_CACHE_HOME": f"{HOME_DIR}/.cache",
    "TMPDIR": "/tmp",  # noqa: S108  (the sandbox's own private tmpfs)
    "GIT_TERMINAL_PROMPT": "0",
}


class BubblewrapSandbox:
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

    def _argv(self, argv: list[str], env: dict[str, str]) -> list[str]:
        args = [
            "bwrap",
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "sandbox",
            "--cap-drop",
            "ALL",
            "--clearenv",
        ]
        for directory in _SYSTEM_DIRS:
            path = Path(directory)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), directory]
            elif path.exists():
                args += ["--ro-bind", directory, directory]
        for entry in _ETC_ENTRIES:
            if Path("/etc", entry).exists():
                args += ["--ro-bind", f"/etc/{entry}", f"/etc/{entry}"]
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",  # noqa: S108  (a private tmpfs inside the sandbox)
            "--bind",
            str(self.repo),
            REPO_DIR,
            "--bind",
            str(self.home),
            HOME_DIR,
        ]
        if self._tools.exists():
            args += ["--ro-bind", str(self._tools), TOOLS_DIR]
        for name, value in {**BASE_ENV, **env}.items():
            args += ["--setenv", name, value]
        args += ["--chdir", REPO_DIR, "--", *argv]
        return args

    def _limits(self) -> None:
        # Runs in the child before exec. RLIMIT_NPROC binds only unprivileged users, and
        # an address-space cap would break runtimes that reserve large heaps (Bun), so
        # memory is capped through the data segment where the kernel honours it.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (self._max_processes, self._max_processes))
        data = self._memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))

    async def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 300
    ) -> CommandResult:
        process = await asyncio.create_subprocess_exec(
            *self._argv(argv, env or {}),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=self._limits,
        )
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
            return await asyncio.create_subprocess_exec(
                *self._argv(argv, env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=self._limits,
            )


class BubblewrapProvider:
    def __init__(self, tools: Path, memory_mb: int, max_processes: int) -> None:
        self._tools = tools
        self._memory_mb = memory_mb
        self._max_processes = max_processes

    def check(self) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed on the worker, so tasks cannot run safely. "
                "Install it: `apt-get install bubblewrap`, or `make install` as root."
            )

    def create(self, root: Path) -> BubblewrapSandbox:
        for directory in (root / "repo", root / "home", root / "logs"):
            directory.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        return self.open(root)

    def open(self, root: Path) -> BubblewrapSandbox:
        return BubblewrapSandbox(root, self._tools, self._memory_mb, self._max_processes)

    async def destroy(self, root: Path) -> None:
        await asyncio.to_thread(shutil.rmtree, root, True)
