"""What notifications say: which account, what happened, what to do. Pure, no I/O."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from pydantic import ValidationError

from domain.post import Post
from interfaces.config import Settings
from interfaces.email import SmtpConfig, _permanent
from projections.notices import (
    AccountLabel,
    connection_errored,
    connection_expired,
    connection_expiring,
    post_outcome,
)
from projections.notifications import notification_id

ORG = UUID("00000000-0000-4000-8000-000000000001")
AUTHOR = UUID("00000000-0000-4000-8000-000000000002")
INTEGRATION = UUID("00000000-0000-4000-8000-000000000003")
X = "00000000-0000-4000-8000-00000000000a"
TIKTOK = "00000000-0000-4000-8000-00000000000b"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ALICE = AccountLabel("twitter", "alice")
LABELS = {X: ALICE, TIKTOK: AccountLabel("tiktok", "bob")}


def published_post(*outcomes: tuple[str, str | None, str | None]) -> Post:
    """A post to X and TikTok whose deliveries ended as given: (account, category, message),
    a None category meaning published."""
    post = Post.draft(
        organization_id=ORG,
        author_id=AUTHOR,
        content="Spring launch:   our new\nplanner is here, with a long enough text to cut",
        thread=[],
        media_urls=[],
        accounts={X: "twitter", TIKTOK: "tiktok"},
    )
    post.schedule(NOW + timedelta(hours=1), now=NOW)
    post.start_publishing()
    for account, category, message in outcomes:
        post.attempt(account, attempt_key=f"{account}/1", lease_until=NOW + timedelta(hours=2))
        if category is None:
            post.record_published(account, remote_id="1", url="https://x.com/i/web/status/1")
        else:
            post.record_failed(account, category=category, retryable=False, message=message or "")
    return post


def test_an_expired_connection_says_to_reconnect_the_named_account() -> None:
    notice = connection_expired(ALICE, INTEGRATION, "the refresh token was revoked.")
    assert notice.kind == "connection_expired"
    assert notice.title == "Reconnect @alice on X: the connection expired"
    assert notice.body.startswith(
        "Reconnect @alice on X: its connection expired (the refresh token was revoked)."
    )
    assert (notice.subject_type, notice.subject_id) == ("integration", INTEGRATION)
    assert notice.details == {
        "provider": "twitter",
        "accountName": "alice",
        "reason": "the refresh token was revoked.",
    }


def test_an_expiring_connection_gives_the_date_in_utc() -> None:
    in_paris = datetime(2030, 3, 4, 10, 30, tzinfo=UTC).astimezone()
    notice = connection_expiring(ALICE, INTEGRATION, in_paris)
    assert notice.title == "Reconnect @alice on X before 04 Mar 2030"
    assert "expires on Monday 04 March 2030 at 10:30 UTC" in notice.body
    assert notice.details["expiresAt"] == "2030-03-04T10:30:00+00:00"


def test_an_errored_connection_names_the_operation() -> None:
    notice = connection_errored(ALICE, INTEGRATION, "health_check", "X answered 503")
    assert notice.title == "Problem with @alice on X"
    assert "during health check: X answered 503." in notice.body
    assert "reconnect @alice on X" in notice.body


def test_a_failed_post_lists_each_account_with_what_to_do() -> None:
    post = published_post(
        (X, "auth_expired", "the X account @alice needs reconnecting (revoked)"),
        (TIKTOK, "rate_limited", "429 Too Many Requests."),
    )
    notice = post_outcome(post, LABELS, partial=False)
    assert notice.kind == "post_failed"
    assert (
        notice.title
        == 'Your post "Spring launch: our new planner is here, with a…" could not be published'
    )
    assert notice.body.splitlines() == [
        "It failed on all 2 accounts:",
        "- @alice on X: the X account @alice needs reconnecting (revoked). "
        "Reconnect @alice on X, then republish the post.",
        "- @bob on TikTok: 429 Too Many Requests. "
        "The platform's rate limit was reached: republish the post later.",
        "Republishing the post retries it on these accounts.",
    ]
    assert notice.details["published"] == 0
    assert [f["accountName"] for f in notice.details["failures"]] == ["alice", "bob"]


def test_a_partial_post_names_only_the_failed_account() -> None:
    post = published_post((X, None, None), (TIKTOK, "content_rejected", "duplicate content"))
    notice = post_outcome(post, LABELS, partial=True)
    assert notice.kind == "post_partial"
    assert notice.title.endswith("was published to 1 of 2 accounts")
    assert "@alice" not in notice.body
    assert "- @bob on TikTok: duplicate content." in notice.body
    assert notice.body.endswith("Republishing the post retries only the accounts that failed.")


def test_an_account_the_view_never_saw_is_still_reported() -> None:
    post = published_post((X, "platform_error", "boom"), (TIKTOK, "platform_error", "boom"))
    assert "- @unknown on its platform: boom." in post_outcome(post, {}, partial=False).body


def test_notification_ids_are_a_function_of_the_event() -> None:
    assert notification_id(INTEGRATION, 3) == notification_id(INTEGRATION, 3)
    assert notification_id(INTEGRATION, 3) != notification_id(INTEGRATION, 4)


def test_email_needs_a_from_address_and_hides_the_password() -> None:
    with pytest.raises(ValidationError, match="KAIROS_SMTP_FROM"):
        Settings(environment="development", smtp_host="smtp.example.com")
    settings = Settings(
        environment="development",
        smtp_host="smtp.example.com",
        smtp_from="Kairos <kairos@example.com>",
        smtp_username="kairos",
        smtp_password="hunter2-hunter2",
    )
    config = SmtpConfig.from_settings(settings)
    assert config is not None
    assert (config.port, config.starttls, config.implicit_tls) == (587, True, False)
    assert config.password == "hunter2-hunter2"
    assert "hunter2" not in repr(config)
    assert "hunter2" not in repr(settings)
    assert SmtpConfig.from_settings(Settings(environment="development")) is None


def test_only_a_5xx_refusal_of_the_message_is_permanent() -> None:
    assert _permanent(smtplib.SMTPDataError(554, b"rejected"))
    assert not _permanent(smtplib.SMTPDataError(451, b"try later"))
    assert _permanent(smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}))
    assert not _permanent(smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"busy")}))
    assert not _permanent(ConnectionRefusedError())


def test_a_message_the_server_cannot_take_fails_alone_and_for_good() -> None:
    import smtplib

    from interfaces.email import _message_error, _permanent

    for exc in (
        smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server"),
        UnicodeEncodeError("ascii", "ä", 0, 1, "cannot encode"),
        ValueError("invalid header"),
    ):
        assert _message_error(exc)
        assert _permanent(exc)
    dropped = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    assert not _message_error(dropped)
    assert not _permanent(dropped)
