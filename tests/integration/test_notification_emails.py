"""Email notifications through a real SMTP server on loopback (aiosmtpd).

A Kairos of its own, on its own database, is built from settings with SMTP: its projector
writes the outbox and its sender drains it, exactly as ``kairos projector`` does.
"""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from interfaces.email import organization_admins
from projections.notifications import NotificationsView, notification_id
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.conftest import make_settings, unique
from tests.support.notifications import connect_directly, eventually
from tests.support.servers import free_port

SMTP_LOGIN = "kairos"
SMTP_PASSWORD = "smtp-password-for-tests"


@dataclass
class Received:
    recipients: list[str]
    message: EmailMessage


@dataclass
class MailServer:
    """An SMTP server on loopback that checks logins and refuses 'bounce-' addresses."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("bounce-"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == SMTP_LOGIN.encode()
            and data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok)

    def start(self) -> None:
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.authenticate,
            auth_require_tls=False,  # offered over plain text on loopback; not required
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received if address in r.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15) -> list[EmailMessage]:
        return eventually(
            lambda: found if len(found := self.to(address)) >= count else None,
            timeout=timeout,
            what=f"{count} email(s) to {address}",
        )


@pytest.fixture(scope="module")
def smtp() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mailing(server_url: str, sandbox_url: str, smtp: MailServer) -> Iterator[Any]:
    """A Kairos with SMTP settings, on a database of its own, running its projector."""
    from interfaces.bootstrap import build

    name = f"kairos_mail_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = make_conninfo(server_url, dbname=name)
    settings = make_settings(
        database_url,
        sandbox_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="Kairos <kairos@example.test>",
        smtp_username=SMTP_LOGIN,
        smtp_password=SMTP_PASSWORD,
        smtp_starttls=False,
        smtp_retry_backoff=timedelta(milliseconds=300),
        db_pool_size=4,
    )
    system = build(settings)
    system.start_projections()
    system.start_email()
    try:
        yield system
    finally:
        system.close()
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Team:
    organization_id: UUID
    owner: str
    admin: str
    member: str


def team(kairos: Any, *, admin_prefix: str = "admin") -> Team:
    """An organization with an owner, an admin and a plain member (each with an email)."""
    tag = secrets.token_hex(4)
    users = {
        role: kairos.identity.create_user(
            email=f"{prefix}-{tag}@example.test", password="password-1234", name=role
        )
        for role, prefix in (("owner", "owner"), ("admin", admin_prefix), ("member", "member"))
    }
    organization_id = users["owner"][1].id
    with psycopg.connect(kairos.settings.database_url) as conn:
        for role in ("admin", "member"):
            conn.execute(
                "INSERT INTO memberships (organization_id, user_id, role) VALUES (%s, %s, %s)",
                (organization_id, users[role][0].id, role),
            )
    return Team(organization_id, *(users[r][0].email for r in ("owner", "admin", "member")))


def outbox_rows(kairos: Any, notification: UUID) -> list[dict[str, Any]]:
    with psycopg.connect(kairos.settings.database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM email_outbox WHERE notification_id = %s ORDER BY recipient",
            (notification,),
        ).fetchall()


def test_an_expired_connection_emails_the_owners_and_admins(mailing: Any, smtp: MailServer) -> None:
    people = team(mailing)
    name = unique("mailed")
    integration = connect_directly(mailing, people.organization_id, name)
    integration.record_token_expired("the refresh token was revoked")
    mailing.app.save_all(integration)
    expected_id = notification_id(integration.id, integration.version)

    [to_owner] = smtp.wait_for(people.owner)
    [to_admin] = smtp.wait_for(people.admin)
    assert to_owner["To"] == people.owner
    assert to_owner["From"] == "Kairos <kairos@example.test>"
    assert to_owner["Subject"] == f"Reconnect @{name} on X: the connection expired"
    assert to_owner["X-Kairos-Notification-Id"] == str(expected_id)
    text = to_owner.get_content()
    assert text.startswith(
        f"Reconnect @{name} on X: its connection expired (the refresh token was revoked)."
    )
    assert f"Notifications: {mailing.settings.callback_base}/api/notifications" in text
    assert to_admin["Subject"] == to_owner["Subject"]
    assert smtp.logins  # the sender logged in with the configured credentials
    assert smtp.to(people.member) == []
    rows = outbox_rows(mailing, expected_id)
    assert [r["recipient"] for r in rows] == sorted([people.owner, people.admin])
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in rows)
    [in_app], _ = mailing.notifications_view.list_notifications(people.organization_id)
    assert in_app.id == expected_id


def test_an_address_the_server_refuses_is_given_up_and_the_others_still_sent(
    mailing: Any, smtp: MailServer
) -> None:
    people = team(mailing, admin_prefix="bounce")
    integration = connect_directly(mailing, people.organization_id, unique("bounced"))
    integration.record_error(operation="refresh", message="X answered 500")
    mailing.app.save_all(integration)
    expected_id = notification_id(integration.id, integration.version)

    smtp.wait_for(people.owner)
    refused = eventually(
        lambda: [r for r in outbox_rows(mailing, expected_id) if r["failed_at"] is not None],
        what="the refused address to be given up",
    )
    assert [(r["recipient"], r["attempts"], r["sent_at"]) for r in refused] == [
        (people.admin, 1, None)
    ]
    assert "550" in refused[0]["last_error"]


def test_an_email_waits_while_the_smtp_server_is_down(mailing: Any, smtp: MailServer) -> None:
    people = team(mailing)
    integration = connect_directly(mailing, people.organization_id, unique("outage"))
    smtp.stop()
    try:
        integration.record_token_expired("revoked during the outage")
        mailing.app.save_all(integration)
        expected_id = notification_id(integration.id, integration.version)
        failed = eventually(
            lambda: [
                r
                for r in outbox_rows(mailing, expected_id)
                if r["recipient"] == people.owner and r["last_error"]
            ],
            what="a failed attempt to be recorded",
        )
        assert failed[0]["sent_at"] is None
        assert failed[0]["failed_at"] is None
        assert failed[0]["next_attempt_at"] > failed[0]["created_at"]
    finally:
        smtp.start()
    [message] = smtp.wait_for(people.owner)
    assert "revoked during the outage" in message.get_content()
    [row] = [r for r in outbox_rows(mailing, expected_id) if r["recipient"] == people.owner]
    assert row["sent_at"] is not None
    assert row["attempts"] >= 2
    assert row["last_error"] is None


def test_replays_do_not_duplicate_notifications_or_emails(mailing: Any, smtp: MailServer) -> None:
    people = team(mailing)
    integration = connect_directly(mailing, people.organization_id, unique("replayed"))
    integration.record_token_expired("expired before the replay")
    mailing.app.save_all(integration)
    expected_id = notification_id(integration.id, integration.version)
    smtp.wait_for(people.owner)
    smtp.wait_for(people.admin)
    view = mailing.notifications_view
    assert view.catch_up_to(mailing.app.last_position(), timeout=10)
    queued = _count(mailing, "SELECT count(*) FROM email_outbox")

    def mailed() -> int:
        """Emails of this notification the server received (other tests' emails may still
        be arriving meanwhile)."""
        return sum(r.message["X-Kairos-Notification-Id"] == str(expected_id) for r in smtp.received)

    assert mailed() == 2

    # A verified rebuild, swapped in: shadow views never write the outbox.
    factory = lambda prefix: NotificationsView(mailing.datastore, mailing.app, prefix=prefix)  # noqa: E731
    report = rebuild(view, factory, replace=True)
    assert report.identical, report.differences
    assert report.replaced

    # A view replayed from zero with recipients, as a fresh deployment would: the outbox
    # already holds (and keeps) each email, so nothing is queued twice...
    replay = NotificationsView(
        mailing.datastore, mailing.app, prefix="replay_", recipients=organization_admins
    )
    replay.create_table()
    try:
        ProjectionRunner(replay).catch_up()
        assert replay.position >= view.position
        assert _count(mailing, "SELECT count(*) FROM email_outbox") == queued
    finally:
        replay.drop()

    # ...and once sent emails are purged, events older than the age limit are not mailed.
    with psycopg.connect(mailing.settings.database_url) as conn:
        conn.execute("DELETE FROM email_outbox WHERE notification_id = %s", (expected_id,))
    later = NotificationsView(
        mailing.datastore,
        mailing.app,
        prefix="later_",
        recipients=organization_admins,
        clock=lambda: datetime.now(UTC) + timedelta(days=2),
    )
    later.create_table()
    try:
        ProjectionRunner(later).catch_up()
        assert outbox_rows(mailing, expected_id) == []
    finally:
        later.drop()

    assert mailing.outbox is not None
    assert mailing.outbox.drain_once() == 0
    assert mailed() == 2
    assert _count(mailing, "SELECT count(*) FROM notifications WHERE id = %s", expected_id) == 1


def _count(kairos: Any, query: str, *params: Any) -> int:
    with psycopg.connect(kairos.settings.database_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])
