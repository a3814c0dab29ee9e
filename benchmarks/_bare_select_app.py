"""The baseline: a bare FastAPI endpoint doing one primary-key SELECT, nothing else.

Run as `python benchmarks/_bare_select_app.py PORT DATABASE_URL USER_ID`.
"""

from __future__ import annotations

import sys
import uuid

import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from outrider.db import create_engine

port, url, user_id = int(sys.argv[1]), sys.argv[2], uuid.UUID(sys.argv[3])
engine = create_engine(url)
app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/user")
async def user() -> dict[str, str]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT id, email FROM users WHERE id = :id"), {"id": user_id}
            )
        ).one()
    return {"id": str(row.id), "email": row.email}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
