"""What a notification says: pure functions from events and aggregates to text.

Every notice tells the user what happened to which account and what to do about it. The
text is a function of the events alone (never of the clock or of later state), so replaying
the log writes exactly the same notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from domain.content_rules import PROVIDER_LABELS
from domain.post import DeliveryStatus, Post

NoticeKind = Literal[
    "connection_expiring", "connection_expired", "connection_errored", "post_failed", "post_partial"
]
SubjectType = Literal["integration", "post"]
SNIPPET_CHARS = 50


@dataclass(frozen=True)
class AccountLabel:
    """How a notice names a connected account: ``@name on X``."""

    provider: str
    account_name: str

    def __str__(self) -> str:
        return f"@{self.account_name} on {PROVIDER_LABELS.get(self.provider, self.provider)}"


UNKNOWN_ACCOUNT = AccountLabel(provider="its platform", account_name="unknown")


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    title: str
    body: str
    subject_type: SubjectType
    subject_id: UUID
    details: dict[str, Any]


def connection_expiring(
    account: AccountLabel, integration_id: UUID, expires_at: datetime
) -> Notice:
    when = expires_at.astimezone(UTC)
    return Notice(
        kind="connection_expiring",
        title=f"Reconnect {account} before {when:%d %b %Y}",
        body=(
            f"The connection to {account} expires on {when:%A %d %B %Y at %H:%M} UTC and "
            f"cannot renew itself. Reconnect {account} before then, so its scheduled posts "
            "keep publishing. Reconnecting keeps its scheduled posts, collections and history."
        ),
        subject_type="integration",
        subject_id=integration_id,
        details={**_account(account), "expiresAt": when.isoformat()},
    )


def connection_expired(account: AccountLabel, integration_id: UUID, reason: str) -> Notice:
    return Notice(
        kind="connection_expired",
        title=f"Reconnect {account}: the connection expired",
        body=(
            f"Reconnect {account}: its connection expired ({_clause(reason)}). Posts to this "
            "account fail until you reconnect it. Connect the same account again: its "
            "scheduled posts, collections and history are kept, then republish any post "
            "that failed."
        ),
        subject_type="integration",
        subject_id=integration_id,
        details={**_account(account), "reason": reason},
    )


def connection_errored(
    account: AccountLabel, integration_id: UUID, operation: str, message: str
) -> Notice:
    action = operation.replace("_", " ").strip() or "an operation"
    return Notice(
        kind="connection_errored",
        title=f"Problem with {account}",
        body=(
            f"Kairos hit an error with {account} during {action}: {_clause(message)}. "
            "Posts to this account are still attempted. If the error persists, reconnect "
            f"{account}."
        ),
        subject_type="integration",
        subject_id=integration_id,
        details={**_account(account), "operation": operation, "message": message},
    )


def post_outcome(post: Post, accounts: dict[str, AccountLabel], *, partial: bool) -> Notice:
    """A failed or partly published post: which accounts failed, why, and what to do."""
    snippet = _snippet(post.content)
    failed = [d for d in post.deliveries.values() if d.status is DeliveryStatus.FAILED]
    total = len(post.deliveries)
    published = total - len(failed)
    lines = []
    failures = []
    for delivery in failed:
        label = accounts.get(delivery.account_id, UNKNOWN_ACCOUNT)
        message = delivery.error_message or "no reason was given"
        lines.append(f"- {label}: {_clause(message)}. {_advice(delivery.error_category, label)}")
        failures.append(
            {
                "accountId": delivery.account_id,
                "provider": delivery.provider,
                "accountName": label.account_name,
                "category": delivery.error_category,
                "message": message,
            }
        )
    if partial:
        title = f'Your post "{snippet}" was published to {published} of {total} accounts'
        opening = f"It was published to {published} of {total} accounts but failed on:"
    else:
        title = f'Your post "{snippet}" could not be published'
        opening = f"It failed on {'its account' if total == 1 else f'all {total} accounts'}:"
    closing = (
        "Republishing the post retries only the accounts that failed."
        if partial
        else "Republishing the post retries it on these accounts."
    )
    return Notice(
        kind="post_partial" if partial else "post_failed",
        title=title,
        body="\n".join([opening, *lines, closing]),
        subject_type="post",
        subject_id=post.id,
        details={"accounts": total, "published": published, "failures": failures},
    )


def _advice(category: str | None, account: AccountLabel) -> str:
    advice = {
        "auth_expired": f"Reconnect {account}, then republish the post.",
        "account_unusable": f"Reconnect {account}, then republish the post.",
        "rate_limited": "The platform's rate limit was reached: republish the post later.",
        "quota_exceeded": "The account's posting quota is used up: republish the post later.",
        "content_rejected": "The platform refused the content: the reason above says what to "
        "change (or to reconnect, when a permission is missing).",
        "timed_out": "Every attempt ran out of time without an answer: check the account, "
        "then republish.",
        "media_unavailable": "A media file could not be fetched: check it, then post again.",
        "media_changed": "A media file changed after it was checked: post it again.",
        "missed": "Its time passed while it could not be published: republish it to post now.",
    }
    return advice.get(category or "", "Republish the post to try again.")


def _account(account: AccountLabel) -> dict[str, str]:
    return {"provider": account.provider, "accountName": account.account_name}


def _clause(text: str) -> str:
    """An error message as part of a sentence: no trailing full stop to double up."""
    return text.strip().rstrip(".") or "no reason was given"


def _snippet(content: str) -> str:
    flat = " ".join(content.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    cut = flat[:SNIPPET_CHARS]
    words = cut.rsplit(" ", 1)[0] if " " in cut[SNIPPET_CHARS // 2 :] else cut[:-1]
    return words.rstrip() + "…"
