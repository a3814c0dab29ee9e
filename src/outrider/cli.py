"""The `outrider` command: serve, migrate, users, keys."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.accounts import service as accounts
from outrider.apikeys import service as apikeys
from outrider.apikeys.schemas import MAX_EXPIRY_DAYS, Scope
from outrider.app import create_app
from outrider.config import Settings, get_settings
from outrider.db import create_engine, database_url, sessionmaker
from outrider.logs import configure_logging
from outrider.migrations import upgrade_to_head
from outrider.worker.runner import run_worker

app = typer.Typer(help="Outrider: AI coding agents on your git repositories.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")


def _settings() -> Settings:
    """The settings, or a clear message and exit 2 naming what is wrong."""
    try:
        return get_settings()
    except ValidationError as error:
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else "settings"
            variable = field.upper() if field.isupper() else f"OUTRIDER_{field.upper()}"
            message = problem["msg"].removeprefix("Value error, ")
            typer.echo(f"Invalid setting {variable}: {message}", err=True)
        raise typer.Exit(2) from None


def _prepare() -> tuple[Settings, str]:
    settings = _settings()
    configure_logging(settings.log_level)
    _ = settings.resolved_secret_key  # generated once into OUTRIDER_HOME on first use
    url = database_url(settings)
    upgrade_to_head(url)
    return settings, url


def _run_in_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    worker: Annotated[bool, typer.Option(help="Run a worker in this process too.")] = True,
) -> None:
    """Migrate the database to the latest revision, then serve the API and web UI."""
    settings, url = _prepare()
    config = uvicorn.Config(
        create_app(settings, url), host=host, port=port, log_config=None, proxy_headers=True
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        worker_task = asyncio.create_task(run_worker(settings, url)) if worker else None
        try:
            await server.serve()
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task

    typer.echo(f"Outrider listening on http://{host}:{port}", err=True)
    asyncio.run(main())


@app.command("worker")
def worker_command() -> None:
    """Run a worker alone (on any machine that reaches the database)."""
    settings, url = _prepare()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, url))


@app.command()
def migrate() -> None:
    """Migrate the database to the latest revision."""
    _prepare()
    typer.echo("Database is at the latest revision.", err=True)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    password: Annotated[
        str,
        typer.Option(
            help="At least 8 characters.", prompt=True, hide_input=True, confirmation_prompt=True
        ),
    ],
    admin: Annotated[bool, typer.Option(help="Make the user an admin.")] = False,
) -> None:
    """Create a user (admins can always add users, whatever OUTRIDER_SIGNUP says)."""
    _, url = _prepare()

    async def work(session: AsyncSession) -> str:
        user = await accounts.create_user(session, email, password, admin=admin or None)
        return f"Created user {user.email} ({user.id}){' as admin' if user.is_admin else ''}."

    try:
        typer.echo(_run_in_session(url, work), err=True)
    except accounts.AccountError as error:
        raise _fail(str(error)) from error


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="Email of the key's owner.")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    scope: Annotated[
        list[Scope] | None, typer.Option(help="Narrow the key to these scopes (repeatable).")
    ] = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_EXPIRY_DAYS, help="Expire the key after this many days."),
    ] = None,
) -> None:
    """Create an API key and print it (only the key, on stdout)."""
    _, url = _prepare()

    async def work(session: AsyncSession) -> str:
        owner = await accounts.get_user_by_email(session, user)
        if owner is None:
            raise _fail(f"No user with email {user}.")
        _, raw = await apikeys.create_key(session, owner.id, name.strip(), scope, expires_in_days)
        return raw

    if not name.strip():
        raise _fail("The key's name must not be blank.")
    typer.echo(_run_in_session(url, work))


@keys_app.command("list")
def keys_list(user: Annotated[str, typer.Option(help="Email of the keys' owner.")]) -> None:
    """List a user's live API keys."""
    _, url = _prepare()

    async def work(session: AsyncSession) -> list[str]:
        owner = await accounts.get_user_by_email(session, user)
        if owner is None:
            raise _fail(f"No user with email {user}.")
        rows = []
        for key in await apikeys.list_keys(session, owner.id):
            expires = key.expires_at.isoformat() if key.expires_at else "never"
            used = key.last_used_at.isoformat() if key.last_used_at else "never"
            rows.append(
                f"{key.id}  {key.start}...  {key.name!r}  scopes={','.join(key.scopes)}  "
                f"created={key.created_at.isoformat()}  expires={expires}  last_used={used}"
            )
        return rows

    rows = _run_in_session(url, work)
    typer.echo("\n".join(rows) if rows else "No API keys.")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[uuid.UUID, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key; it stops working at its next request."""
    _, url = _prepare()
    if not _run_in_session(url, lambda session: apikeys.revoke_key(session, key_id)):
        raise _fail(f"No live API key with id {key_id}.")
    typer.echo(f"Revoked {key_id}.", err=True)
