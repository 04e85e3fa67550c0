"""Email notifications over SMTP: who receives them, the sender, and the outbox loop.

The notifications projection writes one ``email_outbox`` row per recipient in the same
transaction as the notification (``projections/notifications.py``). ``EmailOutbox`` claims due
rows with ``FOR UPDATE SKIP LOCKED`` and a lease, so any number of projector processes can run
it; it sends outside any transaction and records the outcome: ``sent_at``, or the error and a
retry with exponential backoff, given up (``failed_at``) after ``max_attempts``. A process that
dies mid-send leaves the lease to run out and the email is sent again: at least once, as mail
goes. Emails carry the notification's text only; no token or secret is ever in one, nor is an
address or a body ever logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from interfaces.config import Settings
from interfaces.postgres.listen import ListenLoop
from projections.notifications import EMAIL_OUTBOX_CHANNEL, OUTBOX_TABLE

log = logging.getLogger("kairos.email")

NOTIFIED_ROLES = ("owner", "admin")
MAX_ERROR_CHARS = 500


def organization_admins(curs: Cursor[DictRow], organization_id: UUID) -> list[str]:
    """Who is emailed about an organization: its owners and admins (identity tables)."""
    curs.execute(
        "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id "
        "WHERE m.organization_id = %s AND m.role = ANY(%s) ORDER BY u.email",
        (organization_id, list(NOTIFIED_ROLES)),
    )
    return [row["email"] for row in curs.fetchall()]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    implicit_tls: bool = False
    timeout: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """None when no SMTP server is configured: notifications stay in-app."""
        if not settings.smtp_host or not settings.smtp_from:
            return None
        password = settings.smtp_password
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            implicit_tls=settings.smtp_ssl,
        )


@dataclass(frozen=True)
class Email:
    notification_id: UUID
    recipient: str
    subject: str
    body: str


Send = Callable[[Email], None]


class SmtpSender:
    """Sends plain-text emails through one SMTP connection per batch (stdlib smtplib)."""

    def __init__(self, config: SmtpConfig, *, footer: str = "") -> None:
        self.config = config
        self.footer = footer

    @contextmanager
    def session(self) -> Iterator[Send]:
        client = self._connect()
        try:
            yield lambda email: self._send(client, email)
        finally:
            with suppress(smtplib.SMTPException, OSError):
                client.quit()

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if config.implicit_tls:
            client = smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout, context=context
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            if config.starttls and not config.implicit_tls:
                client.starttls(context=context)
            if config.username:
                client.login(config.username, config.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def _send(self, client: smtplib.SMTP, email: Email) -> None:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = email.recipient
        message["Subject"] = " ".join(email.subject.split())  # one line, whatever it holds
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid("kairos")
        message["X-Kairos-Notification-Id"] = str(email.notification_id)
        body = email.body if not self.footer else f"{email.body}\n\n-- \n{self.footer}"
        message.set_content(body)
        client.send_message(message)


def _permanent(exc: Exception) -> bool:
    """The server refused this very message for good (5xx), or it cannot be sent as
    written: retrying will not help."""
    if isinstance(exc, smtplib.SMTPNotSupportedError | ValueError):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


def _message_error(exc: Exception) -> bool:
    """An error about one message; the connection can carry on with the next. A message
    the server cannot take as written (an address needing SMTPUTF8 it lacks, a header that
    cannot be encoded) is its own failure, never its batch's."""
    return isinstance(
        exc,
        smtplib.SMTPRecipientsRefused
        | smtplib.SMTPSenderRefused
        | smtplib.SMTPDataError
        | smtplib.SMTPNotSupportedError
        | ValueError,
    )


class EmailOutbox:
    """Drains ``email_outbox``: claim, send, record; wakes on NOTIFY or the next retry."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        sender: SmtpSender,
        *,
        max_attempts: int = 10,
        first_backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(minutes=5),
        batch_size: int = 20,
        idle_wait: float = 1.0,
    ) -> None:
        self.datastore = datastore
        self.sender = sender
        self.max_attempts = max_attempts
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.lease = lease
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self._table = Identifier(datastore.schema, OUTBOX_TABLE)
        self._loop = ListenLoop(
            datastore, EMAIL_OUTBOX_CHANNEL, self._step, name="email outbox", log=log
        )

    def drain_once(self) -> int:
        """Claim and send one batch of due emails; return how many were claimed."""
        claimed = self._claim()
        if not claimed:
            return 0
        pending = list(claimed)
        try:
            with self.sender.session() as send:
                while pending:
                    row = pending[0]
                    try:
                        send(_email(row))
                    except (smtplib.SMTPException, OSError, ValueError) as exc:
                        if not _message_error(exc):
                            raise
                        self._failed(row, exc)
                    else:
                        self._sent(row)
                    pending.pop(0)
        except (smtplib.SMTPException, OSError) as exc:
            # The server is unreachable or dropped us: every email not yet sent waits.
            for row in pending:
                self._failed(row, exc, connection=True)
        return len(claimed)

    def _claim(self) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {0} SET attempts = attempts + 1, next_attempt_at = now() + %s "
                    "WHERE id IN (SELECT id FROM {0} WHERE sent_at IS NULL AND failed_at IS NULL "
                    "AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED) "
                    "RETURNING id, notification_id, recipient, subject, body, attempts"
                ).format(self._table),
                (self.lease, self.batch_size),
            )
            return sorted(curs.fetchall(), key=lambda row: int(row["id"]))

    def _sent(self, row: dict[str, Any]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("UPDATE {0} SET sent_at = now(), last_error = NULL WHERE id = %s").format(
                    self._table
                ),
                (row["id"],),
            )

    def _failed(self, row: dict[str, Any], exc: Exception, *, connection: bool = False) -> None:
        attempts = int(row["attempts"])
        give_up = attempts >= self.max_attempts or (not connection and _permanent(exc))
        backoff = min(self.first_backoff * 2 ** (attempts - 1), self.max_backoff)
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {0} SET last_error = %s, next_attempt_at = now() + %s, "
                    "failed_at = CASE WHEN %s THEN now() END WHERE id = %s"
                ).format(self._table),
                (error, backoff, give_up, row["id"]),
            )
        log.warning(
            "email %s (attempt %d) failed: %s%s",
            row["id"],
            attempts,
            type(exc).__name__,
            "; giving up" if give_up else f"; retrying in {backoff.total_seconds():.0f}s",
        )

    def seconds_until_next(self) -> float | None:
        """How long until the next email falls due; None when nothing is waiting."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now()) AS wait FROM {0} "
                    "WHERE sent_at IS NULL AND failed_at IS NULL"
                ).format(self._table)
            )
            row = curs.fetchone()
        wait = row["wait"] if row else None
        return None if wait is None else max(float(wait), 0.0)

    # ---- running ------------------------------------------------------------------------

    def _step(self) -> float:
        while self.drain_once() >= self.batch_size:
            pass
        due = self.seconds_until_next()
        return self.idle_wait if due is None else min(due, self.idle_wait)

    def run(self) -> None:
        self._loop.run()

    def start(self) -> EmailOutbox:
        self._loop.start()
        return self

    @property
    def alive(self) -> bool:
        return self._loop.alive

    @property
    def restarts(self) -> int:
        return self._loop.restarts

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)


def _email(row: dict[str, Any]) -> Email:
    return Email(
        notification_id=row["notification_id"],
        recipient=row["recipient"],
        subject=row["subject"],
        body=row["body"],
    )


def email_outbox(settings: Settings, datastore: PostgresDatastore) -> EmailOutbox | None:
    """The outbox loop for these settings; None without an SMTP server."""
    config = SmtpConfig.from_settings(settings)
    if config is None:
        return None
    footer = (
        "You receive this as an owner or admin of a Kairos organization. "
        f"Notifications: {settings.callback_base}/api/notifications"
    )
    return EmailOutbox(
        datastore,
        SmtpSender(config, footer=footer),
        max_attempts=settings.smtp_max_attempts,
        first_backoff=settings.smtp_retry_backoff,
    )
