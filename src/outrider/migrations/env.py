"""Alembic environment: runs migrations on a sync psycopg connection, one process at a time."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from outrider.db import Base

config = context.config
target_metadata = Base.metadata

# Tables owned by procrastinate are created by its own schema, not autogenerate.
EXTERNAL_TABLE_PREFIXES = ("procrastinate_",)

MIGRATION_LOCK = 0x6F75746D  # advisory lock id: "outm"


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "table" and name and name.startswith(EXTERNAL_TABLE_PREFIXES))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
    )
    # Several processes may start at once (serve replicas, workers): one migrates, the
    # others wait and then find nothing to do.
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK})  # type: ignore[attr-defined]
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK})  # type: ignore[attr-defined]
        connection.commit()  # type: ignore[attr-defined]


run_migrations_online()
