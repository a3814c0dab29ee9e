"""Sandboxes made with bubblewrap: read-only system, writable repo and home, nothing else.

Inside: /usr and the few /etc files programs need, read-only; /sandbox/repo and
/sandbox/home writable; /sandbox/tools (OpenCode) read-only; a private /tmp, /proc and
/dev; its own pid, ipc and uts namespaces; no capabilities; it dies with its parent.
Other sandboxes, OUTRIDER_HOME and the host's home directories are simply not there.
The network is shared: the agent must reach its model and the git remote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from outrider.sandbox.base import (
    HOME_DIR,
    REPO_DIR,
    SANDBOXED_PATHS,
    TOOLS_DIR,
    SandboxUnavailable,
    agent_base_env,
)
from outrider.sandbox.process import DirectoryProvider, ProcessSandbox

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
    **agent_base_env(SANDBOXED_PATHS),
    "TMPDIR": "/tmp",  # noqa: S108  (the sandbox's own private tmpfs)
}


class BubblewrapSandbox(ProcessSandbox):
    paths = SANDBOXED_PATHS

    def _launch(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
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
        # bwrap itself needs only PATH to be found; --clearenv empties it for the agent.
        return args, {"PATH": BASE_ENV["PATH"]}


class BubblewrapProvider(DirectoryProvider):
    sandbox_class = BubblewrapSandbox

    def check(self) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed on the worker, so tasks cannot run safely. "
                "Install it: `apt-get install bubblewrap`, or `make install` as root, "
                "or (unsafe: the agent runs as the worker's user) set OUTRIDER_SANDBOX=none."
            )
