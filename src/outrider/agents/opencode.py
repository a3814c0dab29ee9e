"""The OpenCode agent runtime: install, configure, start inside a sandbox, and talk to it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from outrider.config import Settings
from outrider.sandbox.base import AgentPaths, Sandbox

log = logging.getLogger(__name__)

CONFIG_RELATIVE = ".config/outrider/opencode.json"
_install_lock = asyncio.Lock()


class AgentError(RuntimeError):
    """The agent could not be started or reached; the message is for a person."""


def _platform_package() -> str:
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return f"opencode-linux-{machine}"


def binary_relative_path() -> str:
    return f"node_modules/{_platform_package()}/bin/opencode"


async def ensure_installed(settings: Settings) -> Path:
    """Install the pinned opencode-ai from npm into OUTRIDER_HOME/tools on first need."""
    tools = settings.tools_dir
    binary = tools / binary_relative_path()
    marker = tools / f".opencode-{settings.opencode_version}"
    async with _install_lock:
        if binary.exists() and marker.exists():
            return binary
        npm = shutil.which("npm")
        if npm is None:
            raise AgentError("npm is needed to install OpenCode: apt-get install npm")
        tools.mkdir(parents=True, exist_ok=True)
        log.info("installing OpenCode", extra={"version": settings.opencode_version})
        process = await asyncio.create_subprocess_exec(
            npm,
            "install",
            "--prefix",
            str(tools),
            "--no-audit",
            "--no-fund",
            "--no-save",
            f"opencode-ai@{settings.opencode_version}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await process.communicate()
        if process.returncode != 0 or not binary.exists():
            raise AgentError(f"installing OpenCode failed: {stderr.decode()[-500:]}")
        marker.touch()
        return binary


def split_model(model: str) -> tuple[str, str]:
    provider, _, model_id = model.partition("/")
    return provider, model_id


def build_config(settings: Settings, model: str) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for provider_id, endpoint in settings.configured_providers().items():
        if endpoint is None:
            continue  # built-in provider, key passed in the environment
        providers[provider_id] = {
            "npm": "@ai-sdk/openai-compatible",
            "name": provider_id,
            "options": {"baseURL": endpoint.base_url, "apiKey": endpoint.api_key or "none"},
            "models": {name: {"name": name} for name in endpoint.models},
        }
    return {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": model,
        "small_model": model,
        "provider": providers,
        # Nobody is there to answer a prompt: allow work in the repo, refuse the rest.
        "permission": {
            "edit": "allow",
            "bash": "allow",
            "webfetch": "allow",
            "external_directory": "deny",
        },
    }


def agent_environment(settings: Settings, paths: AgentPaths, password: str) -> dict[str, str]:
    env = {
        "OPENCODE_CONFIG": f"{paths.home}/{CONFIG_RELATIVE}",
        "OPENCODE_SERVER_PASSWORD": password,
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "GIT_AUTHOR_NAME": "Outrider",
        "GIT_AUTHOR_EMAIL": "agent@outrider.invalid",
        "GIT_COMMITTER_NAME": "Outrider",
        "GIT_COMMITTER_EMAIL": "agent@outrider.invalid",
    }
    if settings.anthropic_api_key:
        env["ANTHROPIC_API_KEY"] = settings.anthropic_api_key
    if settings.openai_api_key:
        env["OPENAI_API_KEY"] = settings.openai_api_key
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningAgent:
    process: asyncio.subprocess.Process
    client: OpenCodeClient
    repo_dir: str  # as the agent sees it; what the permission policy allows

    async def stop(self) -> None:
        await self.client.close()
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start(sandbox: Sandbox, settings: Settings, model: str, timeout: float) -> RunningAgent:
    """Write the config, start `opencode serve` in the sandbox, wait until it is healthy."""
    config_file = sandbox.home / CONFIG_RELATIVE
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(build_config(settings, model)))
    config_file.chmod(0o600)
    password = secrets.token_urlsafe(24)
    port = free_port()
    process = await sandbox.start(
        [
            f"{sandbox.paths.tools}/{binary_relative_path()}",
            "serve",
            "--hostname",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        agent_environment(settings, sandbox.paths, password),
        sandbox.root / "logs" / "opencode.log",
    )
    client = OpenCodeClient(f"http://127.0.0.1:{port}", password)
    agent = RunningAgent(process, client, sandbox.paths.repo)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if process.returncode is not None:
            await client.close()
            raise AgentError(f"OpenCode exited at start (code {process.returncode})")
        try:
            if await client.healthy():
                return agent
        except httpx.HTTPError:
            pass
        if loop.time() > deadline:
            await agent.stop()
            raise AgentError(f"OpenCode did not become healthy within {timeout:.0f} s")
        await asyncio.sleep(0.1)


class OpenCodeClient:
    def __init__(self, base_url: str, password: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=("opencode", password), timeout=httpx.Timeout(30, connect=2)
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def healthy(self) -> bool:
        response = await self._http.get("/global/health", timeout=1)
        return response.status_code == 200 and bool(response.json().get("healthy"))

    async def create_session(self, title: str, attempts: int = 5) -> str:
        for attempt in range(attempts):
            try:
                response = await self._http.post("/session", json={"title": title})
                response.raise_for_status()
                session_id: str = response.json()["id"]
                return session_id
            except httpx.HTTPError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def prompt(self, session_id: str, text: str, model: str, agent: str) -> None:
        provider, model_id = split_model(model)
        response = await self._http.post(
            f"/session/{session_id}/prompt_async",
            json={
                "parts": [{"type": "text", "text": text}],
                "agent": agent,
                "model": {"providerID": provider, "modelID": model_id},
            },
        )
        response.raise_for_status()

    async def abort(self, session_id: str) -> None:
        response = await self._http.post(f"/session/{session_id}/abort")
        response.raise_for_status()

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        response = await self._http.get(f"/session/{session_id}/message")
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        return messages

    async def reply_permission(self, request_id: str, reply: str) -> None:
        response = await self._http.post(f"/permission/{request_id}/reply", json={"reply": reply})
        response.raise_for_status()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The server's event stream (GET /event), one decoded event at a time."""
        async with self._http.stream(
            "GET", "/event", timeout=httpx.Timeout(None, connect=2)
        ) as response:
            response.raise_for_status()
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []


def permission_reply(properties: dict[str, Any], repo_dir: str) -> str:
    """Our policy for a permission request: work inside the repo yes, outside no."""
    if properties.get("permission") == "external_directory":
        return "reject"
    patterns = properties.get("patterns") or []
    if any(isinstance(p, str) and p.startswith("/") and not _inside(p, repo_dir) for p in patterns):
        return "reject"
    return "once"


def _inside(pattern: str, directory: str) -> bool:
    # Normalised first, so "<repo>/../elsewhere" counts as outside.
    path, directory = os.path.normpath(pattern), os.path.normpath(directory)
    return path == directory or path.startswith(directory + "/")
