"""Worker jobs: run the agent for a task (provision, supervise, decide), destroy a
sandbox, and the reaper that leaves no task unresolved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from procrastinate import JobContext
from procrastinate.jobs import Status
from procrastinate.manager import JobManager
from sqlalchemy import update

from outrider import egress
from outrider.agents import opencode
from outrider.agents.opencode import AgentError, RunningAgent
from outrider.events import service as events
from outrider.models_common import utcnow
from outrider.sandbox.base import Sandbox, SandboxUnavailable
from outrider.tasks import service as tasks
from outrider.tasks.models import Task, TaskStatus
from outrider.webhooks import service as webhooks
from outrider.worker import runtime
from outrider.worker.app import PROVISION_QUEUE, app

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25
CHECK_INTERVAL = 1.0
# OpenCode events that say nothing about the task (plugin loading, catalogue refreshes).
_NOISE_PREFIXES = ("server.", "plugin.", "catalog.", "reference.", "integration.", "lsp.")


class TaskFailed(Exception):
    """Ends a task in error; the message is shown to its owner."""


def _git_error(stderr: str, action: str) -> str:
    text = stderr.strip().splitlines()
    lowered = stderr.lower()
    if "not found" in lowered or "does not exist" in lowered or "404" in lowered:
        return f"git {action} failed: repository not found"
    if "authentication" in lowered or "403" in lowered or "could not read username" in lowered:
        return f"git {action} failed: authentication required or refused"
    if "could not resolve host" in lowered:
        return f"git {action} failed: the repository's host could not be resolved"
    return f"git {action} failed: {text[-1] if text else 'unknown error'}"


async def _prepare_repository(sandbox: Sandbox, task: Task) -> None:
    if task.repo_url is None:
        result = await sandbox.run(["git", "init", "-q", "-b", task.branch or "main", "."])
        if result.returncode != 0:
            raise TaskFailed(_git_error(result.stderr, "init"))
        return
    rt = runtime.current()
    # Checked again now, and git is pinned to the address checked (no redirects), so a
    # name that has since rebound to an internal address gains nothing.
    try:
        checked = await egress.check_url(task.repo_url, rt.settings.allowed_networks)
    except egress.EgressRefused as error:
        raise TaskFailed(f"git clone refused: {error}") from error
    address = checked.addresses[0]
    pinned = f"[{address}]" if address.version == 6 else str(address)
    clone = [
        "git",
        "-c",
        f"http.curloptResolve={checked.host}:{checked.port}:{pinned}",
        "-c",
        "http.followRedirects=false",
        "clone",
        "--quiet",
        "--depth",
        "50",
        "--no-single-branch",
        task.repo_url,
        ".",
    ]
    result = await sandbox.run(clone, timeout=600)
    if result.returncode != 0:
        raise TaskFailed(_git_error(result.stderr, "clone"))
    if task.branch:
        exists = await sandbox.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{task.branch}"]
        )
        checkout = (
            ["git", "checkout", "-q", task.branch]
            if exists.returncode == 0
            else ["git", "checkout", "-q", "-b", task.branch]
        )
        result = await sandbox.run(checkout)
        if result.returncode != 0:
            raise TaskFailed(_git_error(result.stderr, "checkout"))


async def _fail(task_id: uuid.UUID, expected: list[TaskStatus], message: str) -> None:
    rt = runtime.current()
    async with rt.sessions() as session, session.begin():
        await tasks.transition(session, task_id, expected, TaskStatus.error, error=message)


@app.task(name="run_agent", queue=PROVISION_QUEUE, pass_context=True)
async def run_agent(context: JobContext, task_id: str) -> None:
    """Provision (first run) or resume (after a follow-up), then supervise until the agent
    is idle with an outcome. Nothing here depends on anyone watching the stream."""
    rt = runtime.current()
    identifier = uuid.UUID(task_id)
    async with rt.sessions() as session:
        task = await session.get(Task, identifier)
    if task is None or task.status not in (TaskStatus.creating, TaskStatus.active):
        return
    provisioning = task.status is TaskStatus.creating
    agent: RunningAgent | None = None
    sandbox: Sandbox | None = None
    try:
        try:
            rt.sandboxes.check()
        except SandboxUnavailable as error:
            raise TaskFailed(str(error)) from error
        if provisioning:
            root = rt.settings.sandboxes_dir.resolve() / str(task.id)
            async with rt.sessions() as session, session.begin():
                await session.execute(
                    update(Task)
                    .where(Task.id == task.id)
                    .values(worker_queue=rt.queue, sandbox_path=str(root))
                )
            try:
                sandbox, agent, agent_session = await asyncio.wait_for(
                    _provision(task, root), rt.settings.provision_timeout
                )
            except TimeoutError as error:
                raise TaskFailed(
                    f"Provisioning took longer than {rt.settings.provision_timeout:.0f} s "
                    "(OUTRIDER_PROVISION_TIMEOUT)."
                ) from error
            async with rt.sessions() as session, session.begin():
                await session.execute(
                    update(Task).where(Task.id == task.id).values(agent_session_id=agent_session)
                )
            task.agent_session_id = agent_session
        else:
            if task.sandbox_path is None or not await asyncio.to_thread(
                Path(task.sandbox_path).exists
            ):
                raise TaskFailed(
                    "The task's sandbox is gone (reaped or lost with its worker); "
                    "create a new task to continue."
                )
            sandbox = rt.sandboxes.open(Path(task.sandbox_path))
            await opencode.ensure_installed(rt.settings)
            agent = await opencode.start(sandbox, rt.settings, task.model, timeout=60)
        assert agent is not None
        supervisor = Supervisor(task, agent, provisioning)
        await supervisor.run()
    except TaskFailed as error:
        await _fail(identifier, [TaskStatus.creating, TaskStatus.active], str(error))
        if provisioning:
            await _destroy_after_failed_provision(identifier)
    except (AgentError, httpx.HTTPError) as error:
        await _fail(
            identifier, [TaskStatus.creating, TaskStatus.active], f"The agent failed: {error}"
        )
        if provisioning:
            await _destroy_after_failed_provision(identifier)
    finally:
        if agent is not None:
            await agent.stop()


async def _provision(task: Task, root: Path) -> tuple[Sandbox, RunningAgent, str]:
    rt = runtime.current()
    await opencode.ensure_installed(rt.settings)
    sandbox = rt.sandboxes.create(root)
    await _prepare_repository(sandbox, task)
    agent = await opencode.start(sandbox, rt.settings, task.model, timeout=60)
    try:
        agent_session = await agent.client.create_session(task.title)
    except httpx.HTTPError:
        await agent.stop()
        raise
    return sandbox, agent, agent_session


async def _destroy_after_failed_provision(task_id: uuid.UUID) -> None:
    rt = runtime.current()
    async with rt.sessions() as session, session.begin():
        task = await session.get(Task, task_id)
        if task is None or task.sandbox_path is None:
            return
        await rt.sandboxes.destroy(Path(task.sandbox_path))
        task.sandbox_destroyed_at = utcnow()


@dataclass
class Outcome:
    status: TaskStatus | None  # None: not finished yet
    summary: str | None = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


def decide(messages: list[dict[str, Any]], prompt_message_id: str | None) -> Outcome:
    """Read the outcome of the latest prompt from what OpenCode recorded.

    session.idle also follows errors and aborts, and may come twice, so the decision is
    made from the last assistant message, never from the idle event alone.
    """
    input_tokens = output_tokens = 0
    cost = 0.0
    for message in messages:
        for part in message.get("parts", []):
            if part.get("type") == "step-finish":
                tokens = part.get("tokens") or {}
                input_tokens += int(tokens.get("input", 0))
                output_tokens += int(tokens.get("output", 0))
                cost += float(part.get("cost") or 0)
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "cost": cost}
    last = messages[-1] if messages else None
    if last is None or last["info"].get("role") != "assistant":
        return Outcome(None, usage=usage)
    if prompt_message_id and last["info"].get("parentID") != prompt_message_id:
        return Outcome(None, usage=usage)
    info = last["info"]
    if info.get("error"):
        failure: dict[str, Any] = info["error"]
        reason = (failure.get("data") or {}).get("message") or failure.get("name") or "error"
        return Outcome(TaskStatus.error, error=f"The model failed: {reason}", usage=usage)
    if info.get("finish") and info.get("finish") != "tool-calls" and info["time"].get("completed"):
        text = "".join(p.get("text", "") for p in last.get("parts", []) if p.get("type") == "text")
        return Outcome(TaskStatus.completed, summary=text.strip() or None, usage=usage)
    return Outcome(None, usage=usage)


def _coalesce(batch: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Merge consecutive text deltas of one part into one event."""
    merged: list[tuple[str, dict[str, Any]]] = []
    for kind, data in batch:
        if merged and kind == "message.part.delta" and merged[-1][0] == kind:
            previous: dict[str, Any] = merged[-1][1]["properties"]
            current: dict[str, Any] = data["properties"]
            if (previous.get("partID"), previous.get("field")) == (
                current.get("partID"),
                current.get("field"),
            ):
                previous["delta"] = previous.get("delta", "") + current.get("delta", "")
                continue
        merged.append((kind, data))
    return merged


class Supervisor:
    """One subscription for the life of a prompt series; stores events, answers
    permissions, enforces the deadline, and decides when the agent is done."""

    def __init__(self, task: Task, agent: RunningAgent, provisioning: bool) -> None:
        self.task = task
        self.agent = agent
        self.provisioning = provisioning
        self.session_id = task.agent_session_id or ""
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.prompt_started = 0.0
        self.prompt_message_id: str | None = None
        self.messages_before_prompt = 0
        self.connected = asyncio.Event()

    async def _read_events(self) -> None:
        async for event in self.agent.client.events():
            if event.get("type") == "server.connected":
                self.connected.set()
            await self.queue.put(event)

    def _belongs(self, event: dict[str, Any]) -> bool:
        kind = str(event.get("type", ""))
        if kind.startswith(_NOISE_PREFIXES):
            return False
        session_id = (event.get("properties") or {}).get("sessionID")
        return session_id == self.session_id or (session_id is None and kind == "file.edited")

    async def _flush(self) -> bool:
        """Store buffered events; False when the task no longer exists."""
        if not self.pending:
            return True
        batch, self.pending = _coalesce(self.pending), []
        rt = runtime.current()
        try:
            async with rt.sessions() as session, session.begin():
                await events.append(session, self.task.id, batch)
                await session.execute(
                    update(Task).where(Task.id == self.task.id).values(last_activity_at=utcnow())
                )
        except Exception:
            async with rt.sessions() as session:
                if await session.get(Task, self.task.id) is None:
                    return False
            raise
        return True

    async def _send(self, text: str, model: str) -> None:
        loop = asyncio.get_running_loop()
        before = await self.agent.client.messages(self.session_id)
        self.prompt_started = loop.time()
        await self.agent.client.prompt(self.session_id, text, model, self.task.agent)
        # The user message OpenCode records for this prompt is the first after `before`.
        self.messages_before_prompt = len(before)

    async def _prompt_message(self, messages: list[dict[str, Any]]) -> str | None:
        for message in messages[self.messages_before_prompt :]:
            if message["info"].get("role") == "user":
                return str(message["info"]["id"])
        return None

    async def _send_next_queued(self) -> bool:
        rt = runtime.current()
        async with rt.sessions() as session, session.begin():
            message = await tasks.next_pending_message(session, self.task.id)
            if message is None:
                return False
            message.sent_at = utcnow()
            text, model = message.text, message.model or self.task.model
        await self._send(text, model)
        return True

    async def _status(self) -> TaskStatus | None:
        rt = runtime.current()
        async with rt.sessions() as session:
            task = await session.get(Task, self.task.id)
            return task.status if task else None

    async def run(self) -> None:
        rt = runtime.current()
        reader = asyncio.create_task(self._read_events())
        try:
            # Subscribe before prompting, so no event of this prompt is missed.
            await asyncio.wait_for(self.connected.wait(), 30)
            if self.provisioning:
                await self._send(self.task.prompt, self.task.model)
                async with rt.sessions() as session, session.begin():
                    won = await tasks.transition(
                        session, self.task.id, [TaskStatus.creating], TaskStatus.active
                    )
                if not won:
                    await self._abort_quietly()
                    return
            elif not await self._send_next_queued():
                return
            await self._supervise(reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(Exception):
                await self._flush()

    async def _abort_quietly(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self.agent.client.abort(self.session_id)

    async def _supervise(self, reader: asyncio.Task[None]) -> None:
        rt = runtime.current()
        loop = asyncio.get_running_loop()
        last_flush = last_check = loop.time()
        while True:
            try:
                event = await asyncio.wait_for(self.queue.get(), FLUSH_INTERVAL)
            except TimeoutError:
                event = None
            if reader.done():
                raise AgentError("lost the agent's event stream")
            idle = False
            if event is not None and self._belongs(event):
                self.pending.append((str(event["type"]), event))
                properties = event.get("properties") or {}
                if event["type"] == "permission.asked":
                    reply = opencode.permission_reply(properties, self.agent.repo_dir)
                    with contextlib.suppress(httpx.HTTPError):
                        await self.agent.client.reply_permission(str(properties["id"]), reply)
                idle = event["type"] == "session.idle"
            now = loop.time()
            if idle or now - last_flush >= FLUSH_INTERVAL:
                if not await self._flush():
                    await self._abort_quietly()  # the task was deleted
                    return
                last_flush = now
            if now - last_check >= CHECK_INTERVAL or idle:
                last_check = now
                status = await self._status()
                if status is None or status is TaskStatus.terminated:
                    await self._abort_quietly()
                    return
                if now - self.prompt_started > rt.settings.task_timeout:
                    await self._abort_quietly()
                    await _fail(
                        self.task.id,
                        [TaskStatus.active],
                        f"The agent ran past its deadline of "
                        f"{rt.settings.task_timeout:.0f} s (OUTRIDER_TASK_TIMEOUT) "
                        "and was stopped.",
                    )
                    return
            if idle and await self._decide_and_continue():
                return

    async def _decide_and_continue(self) -> bool:
        """After an idle: record the outcome. True when supervision is over."""
        rt = runtime.current()
        messages = await self.agent.client.messages(self.session_id)
        self.prompt_message_id = await self._prompt_message(messages)
        outcome = decide(messages, self.prompt_message_id)
        if outcome.status is None:
            return False
        values: dict[str, Any] = {**outcome.usage, "conversation": messages}
        if outcome.status is TaskStatus.error:
            async with rt.sessions() as session, session.begin():
                await tasks.transition(
                    session,
                    self.task.id,
                    [TaskStatus.active],
                    TaskStatus.error,
                    error=outcome.error,
                    **values,
                )
            return True
        values["summary"] = outcome.summary
        async with rt.sessions() as session, session.begin():
            completed = await tasks.complete_unless_queued(session, self.task.id, **values)
        if completed:
            return True
        return not await self._send_next_queued()


@app.task(name="destroy_sandbox", queue=PROVISION_QUEUE)
async def destroy_sandbox(path: str) -> None:
    """Remove a deleted task's sandbox; a failure is logged, never fatal."""
    rt = runtime.current()
    try:
        await rt.sandboxes.destroy(Path(path))
    except Exception:
        log.exception("could not destroy sandbox", extra={"path": path})


@app.periodic(cron="* * * * * */15", periodic_id="reap")
@app.task(name="reap", queue=PROVISION_QUEUE, queueing_lock="reap", pass_context=True)
async def reap(context: JobContext, timestamp: int) -> None:
    await reap_now(context.app.job_manager)


async def reap_now(job_manager: JobManager) -> None:
    """Resolve tasks whose worker died and destroy sandboxes past their TTL."""
    rt = runtime.current()
    # A job whose worker stopped heart-beating will never finish: mark it failed, and the
    # task it ran is resolved just below.
    for job in await job_manager.get_stalled_jobs(
        task_name="run_agent", seconds_since_heartbeat=15
    ):
        await job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
    # A delivery whose worker died mid-attempt is simply attempted again (same webhook-id).
    for job in await job_manager.get_stalled_jobs(
        task_name="deliver_webhook", seconds_since_heartbeat=15
    ):
        await job_manager.retry_job(job)
    async with rt.sessions() as session, session.begin():
        await webhooks.redefer_orphans(session, timedelta(minutes=1))
    async with rt.sessions() as session, session.begin():
        for task in await tasks.live_tasks_without_job(session, timedelta(seconds=10)):
            await tasks.transition(
                session,
                task.id,
                [TaskStatus.creating, TaskStatus.active],
                TaskStatus.error,
                error="The worker running this task stopped, and its sandbox went with it. "
                "Create a new task to try again.",
            )
    async with rt.sessions() as session, session.begin():
        for task in await tasks.sandboxes_to_reap(
            session, rt.queue, timedelta(seconds=rt.settings.sandbox_ttl)
        ):
            if task.sandbox_path:
                await rt.sandboxes.destroy(Path(task.sandbox_path))
            task.sandbox_destroyed_at = utcnow()
