"""From inside a sandbox, nothing of other tasks, OUTRIDER_HOME or the host is reachable."""

from __future__ import annotations

from pathlib import Path

from outrider.sandbox.bubblewrap import BubblewrapProvider


async def test_a_sandbox_sees_only_its_own_repo_and_home(tmp_path: Path) -> None:
    home = tmp_path / "outrider-home"
    (home / "secret_key").parent.mkdir(parents=True)
    (home / "secret_key").write_text("server secret")
    provider = BubblewrapProvider(home / "tools", memory_mb=1024, max_processes=256)
    provider.check()
    mine = provider.create(home / "sandboxes" / "task-a")
    theirs = provider.create(home / "sandboxes" / "task-b")
    (theirs.repo / "private.txt").write_text("other task's code")

    for target in [
        str(theirs.repo / "private.txt"),
        str(home / "secret_key"),
        "/root",
        "/etc/shadow",
        str(Path.home()),
    ]:
        result = await mine.run(["cat", target])
        assert result.returncode != 0, target
        assert "No such file or directory" in result.stderr

    written = await mine.run(["sh", "-c", "echo ok > /sandbox/repo/f && cat /sandbox/repo/f"])
    assert written.stdout == "ok\n"
    assert (mine.repo / "f").read_text() == "ok\n"
    refused = await mine.run(["sh", "-c", "echo x > /usr/evil"])
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr

    # Its own pid namespace: only bwrap's init, sh, ls and grep are there.
    processes = await mine.run(["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
    assert int(processes.stdout) <= 5
    environment = await mine.run(["env"])
    names = {line.split("=", 1)[0] for line in environment.stdout.splitlines()}
    assert names <= {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "TMPDIR",
        "GIT_TERMINAL_PROMPT",
        "PWD",
        "SHLVL",
        "_",
    }

    await provider.destroy(mine.root)
    assert not mine.root.exists() and theirs.root.exists()
