"""Accounts: sign-up, sign-in (with throttling), and server-side web sessions."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.accounts.models import SignInFailure, User, WebSession
from outrider.accounts.passwords import hash_password, verify_password
from outrider.config import Settings, SignupPolicy
from outrider.models_common import utcnow

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Sign-in throttling: within the window, each failure past the free ones doubles the
# wait before the next attempt, up to the cap.
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_FREE_FAILURES = 5
THROTTLE_MAX_WAIT_SECONDS = 300

_FIRST_USER_LOCK = 0x6F757472  # advisory lock id: "outr"


class AccountError(Exception):
    """A problem a person can fix; the message is shown to them as it is."""

    code = "account_error"


class InvalidEmail(AccountError):
    code = "invalid_email"


class WeakPassword(AccountError):
    code = "weak_password"


class EmailTaken(AccountError):
    code = "email_taken"


class SignupClosed(AccountError):
    code = "signup_closed"


class InvalidCredentials(AccountError):
    code = "invalid_credentials"


class SignInThrottled(AccountError):
    code = "too_many_attempts"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Too many failed sign-ins. Try again in {retry_after_seconds} seconds.")
        self.retry_after_seconds = retry_after_seconds


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _check_new_credentials(email: str, password: str) -> None:
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidEmail("Enter a valid email address, like you@example.com.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"Use a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"Use a password of at most {MAX_PASSWORD_LENGTH} characters.")


async def has_users(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().select_from(User))))


async def signup_open(session: AsyncSession, settings: Settings) -> bool:
    if settings.signup is not None:
        return settings.signup is SignupPolicy.open
    return not await has_users(session)


async def create_user(
    session: AsyncSession, email: str, password: str, *, admin: bool | None = None
) -> User:
    """Create a user. admin=None: admin exactly when this is the first user."""
    email = normalise_email(email)
    _check_new_credentials(email, password)
    password_hash = await hash_password(password)
    # Serialise user creation so two first sign-ups cannot both become admin.
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _FIRST_USER_LOCK})
    if await session.scalar(select(exists().where(User.email == email))):
        raise EmailTaken("An account with that email already exists. Sign in instead.")
    is_admin = admin if admin is not None else not await has_users(session)
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        is_admin=is_admin,
        created_at=utcnow(),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as error:
        raise EmailTaken("An account with that email already exists. Sign in instead.") from error
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalise_email(email)))


async def _throttle_wait(session: AsyncSession, subjects: list[str]) -> int:
    """Seconds until another attempt is allowed for the most throttled subject."""
    since = utcnow() - THROTTLE_WINDOW
    rows = await session.execute(
        select(SignInFailure.subject, func.count(), func.max(SignInFailure.created_at))
        .where(SignInFailure.subject.in_(subjects), SignInFailure.created_at > since)
        .group_by(SignInFailure.subject)
    )
    wait = 0.0
    now = utcnow()
    for _, failures, last_failure in rows:
        if failures < THROTTLE_FREE_FAILURES:
            continue
        backoff = min(2 ** (failures - THROTTLE_FREE_FAILURES), THROTTLE_MAX_WAIT_SECONDS)
        wait = max(wait, (last_failure + timedelta(seconds=backoff) - now).total_seconds())
    return math.ceil(wait) if wait > 0 else 0


async def authenticate(
    session: AsyncSession, email: str, password: str, client_ip: str | None
) -> User:
    """The user for these credentials; raises InvalidCredentials or SignInThrottled.

    Failures are recorded by the caller's transaction, so the caller must commit even
    when this raises InvalidCredentials.
    """
    email = normalise_email(email)
    subjects = [f"email:{email}"] + ([f"ip:{client_ip}"] if client_ip else [])
    wait = await _throttle_wait(session, subjects)
    if wait:
        raise SignInThrottled(wait)
    user = await get_user_by_email(session, email)
    if not await verify_password(user.password_hash if user else None, password) or not user:
        now = utcnow()
        # Old failures no longer count; drop them as new ones arrive so the table stays small.
        await session.execute(
            delete(SignInFailure).where(
                SignInFailure.subject.in_(subjects),
                SignInFailure.created_at <= now - THROTTLE_WINDOW,
            )
        )
        session.add_all(
            SignInFailure(id=uuid.uuid4(), subject=subject, created_at=now) for subject in subjects
        )
        await session.flush()
        raise InvalidCredentials("Incorrect email or password.")
    await session.execute(delete(SignInFailure).where(SignInFailure.subject == f"email:{email}"))
    return user


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class SignedIn:
    user: User
    web_session: WebSession


async def start_session(
    session: AsyncSession, user: User, settings: Settings, user_agent: str | None
) -> tuple[str, WebSession]:
    """Open a web session; return the cookie value (never stored) and the row."""
    token = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_digest=_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(days=settings.session_days),
        user_agent=(user_agent or "")[:400] or None,
    )
    session.add(web_session)
    await session.flush()
    return token, web_session


async def resolve_session(session: AsyncSession, token: str) -> SignedIn | None:
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_digest == _digest(token), WebSession.expires_at > utcnow())
        )
    ).first()
    if row is None:
        return None
    web_session, user = row
    return SignedIn(user=user, web_session=web_session)


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_digest == _digest(token)))
