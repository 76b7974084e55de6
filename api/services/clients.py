"""Client accounts: registration, the profile, and deletion that keeps history."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from api import ratelimit
from api.errors import EmailTaken, NotFound
from api.models.accounts import Client, ClientAdminUpdate, ClientForm, ClientUpdate
from api.models.common import email_key
from api.passwords import hash_password
from api.resources import Resources
from api.services.accounts import SignedIn, open_session
from api.services.reservations import cancel_future_reservations
from api.sessions import end_session

logger = logging.getLogger(__name__)


def tombstone_email(client_id: uuid.UUID) -> str:
    """A deleted client's email: unique, undeliverable, and it frees the old one."""
    return f"deleted-{client_id}@invalid"


async def get_client(pool: asyncpg.Pool, client_id: uuid.UUID) -> Client:
    row = await pool.fetchrow(
        "SELECT id, email, name, surname, patronymic, send_notifications,"
        " is_internal, verified FROM client.clients"
        " WHERE id = $1 AND deleted_at IS NULL",
        client_id,
    )
    if row is None:
        raise NotFound("client_id: no such client")
    return Client.model_validate(dict(row))


async def register_client(
    resources: Resources, form: ClientForm, *, address: str | None
) -> tuple[Client, SignedIn]:
    key = email_key(form.email)
    await ratelimit.enforce(
        resources.settings, resources.valkey,
        action="client-register", address=address, account=key,
    )  # fmt: skip
    password_hash = await hash_password(form.password)
    try:
        row = await resources.pool.fetchrow(
            "INSERT INTO client.clients (id, email, email_key, password_hash, name,"
            " surname, patronymic, send_notifications)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " RETURNING id, email, name, surname, patronymic, send_notifications,"
            " is_internal, verified, token_version",
            uuid.uuid4(), form.email, key, password_hash, form.name, form.surname,
            form.patronymic, form.send_notifications,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as error:
        raise EmailTaken() from error
    assert row is not None
    issued = await open_session(
        resources, kind="client", account_id=row["id"], role="client",
        version=row["token_version"],
    )  # fmt: skip
    return Client.model_validate(dict(row)), SignedIn(row["id"], issued)


async def update_client(
    pool: asyncpg.Pool, client_id: uuid.UUID, changes: ClientUpdate
) -> Client:
    """Apply the fields that were sent; a null or absent one keeps its value."""
    flags = changes if isinstance(changes, ClientAdminUpdate) else ClientAdminUpdate()
    key = email_key(changes.email) if changes.email is not None else None
    try:
        row = await pool.fetchrow(
            "UPDATE client.clients SET email = coalesce($2, email),"
            " email_key = coalesce($3, email_key), name = coalesce($4, name),"
            " surname = coalesce($5, surname), patronymic = coalesce($6, patronymic),"
            " send_notifications = coalesce($7, send_notifications),"
            " is_internal = coalesce($8, is_internal),"
            # "verified" vouches for the name staff saw on a document: a new
            # name is one nobody checked, unless staff set the flag with it
            " verified = CASE WHEN $9::boolean IS NOT NULL THEN $9"
            " WHEN (coalesce($4, name), coalesce($5, surname),"
            " coalesce($6, patronymic)) IS DISTINCT FROM (name, surname, patronymic)"
            " THEN false ELSE verified END,"
            " updated_at = now() WHERE id = $1 AND deleted_at IS NULL"
            " RETURNING id, email, name, surname, patronymic, send_notifications,"
            " is_internal, verified",
            client_id, changes.email, key, changes.name, changes.surname,
            changes.patronymic, changes.send_notifications, flags.is_internal,
            flags.verified,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as error:
        raise EmailTaken() from error
    if row is None:
        raise NotFound("client_id: no such client")
    return Client.model_validate(dict(row))


async def delete_client(
    resources: Resources, client_id: uuid.UUID, *, session_id: str | None = None
) -> None:
    """Cancel what is still to come, anonymise the account, refuse all its tokens.

    The row stays so that past reservations keep their client; what named the
    person is overwritten, the email is freed, and the password matches nothing.
    """
    # No mail from here on: the person asked to be forgotten, and a cancellation
    # mailed before the account is anonymised below would reach them once a
    # booking. Put back if the cancelling fails, since then nothing is deleted.
    mailed = await resources.pool.fetchval(
        "UPDATE client.clients c SET send_notifications = false"
        " FROM (SELECT send_notifications FROM client.clients"
        "       WHERE id = $1 AND deleted_at IS NULL FOR UPDATE) before"
        " WHERE c.id = $1 RETURNING before.send_notifications",
        client_id,
    )
    if mailed is None:
        raise NotFound("client_id: no such client")
    # First, while the account stands: should Temporal be down, this fails with
    # 503 and nothing is deleted, so the request can simply be repeated.
    try:
        cancelled = await cancel_future_reservations(
            resources, client_id=client_id, reason="account deleted"
        )
    except BaseException:
        await resources.pool.execute(
            "UPDATE client.clients SET send_notifications = $2"
            " WHERE id = $1 AND deleted_at IS NULL",
            client_id, mailed,
        )  # fmt: skip
        raise
    deleted = await resources.pool.fetchval(
        "UPDATE client.clients SET email = $2, email_key = $2, name = 'Deleted',"
        " surname = 'Deleted', patronymic = '', password_hash = '!',"
        " send_notifications = false, deleted_at = now(), updated_at = now(),"
        " token_version = token_version + 1"
        " WHERE id = $1 AND deleted_at IS NULL RETURNING id",
        client_id, tombstone_email(client_id),
    )  # fmt: skip
    if deleted is None:
        raise NotFound("client_id: no such client")
    # A booking whose claim committed while the first pass ran was not in it.
    # The update above waited for any claim holding the client's row, and every
    # claim from now on finds the account deleted: this pass leaves none behind.
    cancelled += await cancel_future_reservations(
        resources, client_id=client_id, reason="account deleted"
    )
    if session_id:
        await end_session(resources.settings, resources.valkey, session_id)
    logger.info(
        "client %s deleted and anonymised; %d reservation(s) cancelled",
        client_id, cancelled,
    )  # fmt: skip
