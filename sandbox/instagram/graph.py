"""What every Graph API call passes through, on either host (``/graph`` for
graph.instagram.com, ``/facebook-graph`` for graph.facebook.com): the API version, the
token and the host it belongs to, the hourly call budgets with their usage headers, the
injected faults; then who may see which node.

The endpoints are in ``sandbox.instagram.reads`` and ``sandbox.instagram.publishing``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from sandbox.instagram import problems
from sandbox.instagram.config import HOUR
from sandbox.instagram.db import Media
from sandbox.instagram.oauth import VERSION_RE
from sandbox.instagram.state import InstagramSim
from sandbox.instagram.store import Account, TokenGrant

Host = Literal["instagram", "facebook"]
#: The permission each kind of call needs, per login path (reference §1.1).
PERMISSIONS: dict[Host, dict[str, str]] = {
    "instagram": {
        "basic": "instagram_business_basic",
        "publish": "instagram_business_content_publish",
        "insights": "instagram_business_manage_insights",
    },
    "facebook": {
        "basic": "instagram_basic",
        "publish": "instagram_content_publish",
        "insights": "instagram_manage_insights",
        "pages": "pages_show_list",
    },
}
RATE_LIMITED = (
    "There have been too many calls to this Instagram account. Wait a bit and try again."
    " For more info, please refer to"
    " https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
)
Fields = list[tuple[str, "Fields | None"]]


def iso(ts: float) -> str:
    """Graph's timestamps: ``2024-05-01T12:34:56+0000``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_fields(raw: str) -> Fields:
    """``a,b{c,d}`` → ``[("a", None), ("b", [("c", None), ("d", None)])]``."""
    fields, _ = _fields_from(raw.replace(" ", ""), 0)
    return fields


def _fields_from(raw: str, pos: int) -> tuple[Fields, int]:
    fields: Fields = []
    name = ""
    while pos < len(raw):
        char = raw[pos]
        pos += 1
        if char == "{":
            sub, pos = _fields_from(raw, pos)
            fields.append((name, sub))
            name = ""
        elif char in ",}":
            if name:
                fields.append((name, None))
            name = ""
            if char == "}":
                return fields, pos
        else:
            name += char
    if name:
        fields.append((name, None))
    return fields, pos


@dataclass(frozen=True)
class Caller:
    host: Host
    grant: TokenGrant
    #: Query string and body parameters together (without ``access_token``).
    params: dict[str, str]
    #: Rate-limit headers every answer to this call carries.
    headers: dict[str, str]

    def allowed(self, need: str) -> bool:
        return PERMISSIONS[self.host][need] in self.grant.scopes


Handler = Callable[[Request, Caller, str], Awaitable[Response]]


def fixed_bucket(name: str) -> Callable[[str], str]:
    """A fault and latency bucket that does not depend on the node."""
    return lambda _node_id: name


class Graph:
    """One host's Graph API: the guard, and who may see what."""

    def __init__(self, sim: InstagramSim, host: Host) -> None:
        self.sim = sim
        self.host: Host = host
        self.store = sim.store

    def guarded(
        self, bucket: Callable[[str], str], handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind :meth:`guard`; ``bucket`` names the endpoint for faults."""

        async def endpoint(request: Request) -> Response:
            node_id = request.path_params["node_id"]
            outcome = await self.guard(request, bucket(node_id))
            if isinstance(outcome, Response):
                return outcome
            return await handler(request, outcome, node_id)

        return endpoint

    async def guard(self, request: Request, bucket: str) -> Caller | Response:
        """Latency, version, token, host, rate limits and injected faults."""
        sim = self.sim
        await sim.delay(bucket)
        if not VERSION_RE.match(request.path_params.get("version", "")):
            return problems.unknown_path(request.url.path)
        params = await _params(request)
        token = params.pop("access_token", "")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if not token and scheme.lower() in ("bearer", "oauth"):
            token = value.strip()
        if not token:
            return problems.missing_token()
        now = sim.now()
        grant = self.store.token(token)
        if grant is None or grant.login != self.host:
            return problems.unparsable_token()
        if grant.revoked_at is not None:
            return problems.revoked_token(sim.config.app_name)
        if grant.expires_at <= now:
            return problems.expired_token(grant.expires_at, now)
        headers, refusal = self._count_call(grant.subject_id, now)
        if refusal is not None:
            return refusal
        failure = sim.faults.before(bucket)
        if failure is not None:
            return problems.injected(failure, headers)
        return Caller(self.host, grant, params, headers)

    def _count_call(self, subject: str, now: float) -> tuple[dict[str, str], Response | None]:
        """Count the call against the app's and the account's hourly budgets (reference
        §1.8): ``X-App-Usage`` and code 4, ``X-Business-Use-Case-Usage`` and code 80002."""
        config, headers = self.sim.config, {}
        if config.app_calls_per_hour > 0:
            app = self.store.count_call("app", config.app_calls_per_hour, now, HOUR)
            share = min(100, app.used * 100 // app.limit)
            headers["x-app-usage"] = json.dumps(
                {"call_count": share, "total_cputime": share // 4, "total_time": share // 3}
            )
            if not app.allowed:
                message = "(#4) Application request limit reached"
                refusal = problems.graph_error(400, 4, message, transient=True, headers=headers)
                return headers, refusal
        account = self.store.count_call(subject, config.account_calls_per_hour, now, HOUR)
        share = min(100, account.used * 100 // max(account.limit, 1))
        usage = {
            "type": "instagram",
            "call_count": share if account.allowed else 100,
            "total_cputime": share // 4,
            "total_time": share // 3,
            "estimated_time_to_regain_access": (
                0 if account.allowed else math.ceil((account.reset - now) / 60)
            ),
        }
        headers["x-business-use-case-usage"] = json.dumps({subject: [usage]})
        if account.allowed:
            return headers, None
        refusal = problems.graph_error(400, 80002, RATE_LIMITED, transient=True, headers=headers)
        return headers, refusal

    def ig_account(self, caller: Caller, node_id: str) -> Account | None:
        """The Instagram account ``node_id`` names, if this token reaches it: its own account
        on Instagram Login; a professional account linked to one of the user's Pages on
        Facebook Login."""
        subject = caller.grant.subject_id
        if caller.host == "instagram":
            return self.store.get_account(subject) if node_id in ("me", subject) else None
        account = self.store.get_account(node_id)
        if account is None or not account.professional:
            return None
        pages = self.store.pages(subject)
        return account if any(page.ig_account_id == node_id for page in pages) else None

    def media_for(self, caller: Caller, media_id: str) -> tuple[Media, Account] | None:
        """A published media and its account, if this token reaches that account."""
        media = self.store.get_media(media_id) if media_id.isdigit() else None
        account = self.ig_account(caller, media.owner_id) if media is not None else None
        return None if media is None or account is None else (media, account)


async def _params(request: Request) -> dict[str, str]:
    """Query string, then form or JSON body parameters (Graph takes either)."""
    params = dict(request.query_params.items())
    if request.method != "POST":
        return params
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        for key, value in body.items() if isinstance(body, dict) else ():
            if isinstance(value, list):
                params[key] = ",".join(map(str, value))
            else:
                params[key] = json.dumps(value) if isinstance(value, bool) else str(value)
        return params
    form = await request.form()
    for key in form:
        params[key] = ",".join(str(value) for value in form.getlist(key))
    return params
