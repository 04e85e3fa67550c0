"""The Graph API's read endpoints on both hosts: ``me`` and other nodes (accounts, Pages,
containers, media) with field selection, ``/me/accounts`` (Facebook Login), the account's
media list with cursors and time paging, and media insights from ``sandbox.engagement``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from sandbox.engagement import Counters, counters
from sandbox.instagram import problems
from sandbox.instagram.db import Media
from sandbox.instagram.graph import Caller, Fields, Graph, Handler, fixed_bucket, iso, parse_fields
from sandbox.instagram.problems import GraphJSONResponse
from sandbox.instagram.state import InstagramSim
from sandbox.instagram.store import Account, Page

CDN = "https://scontent.cdninstagram.com/sandbox"
ID_ONLY: Fields = [("id", None)]


def counted(sim: InstagramSim, media: Media, account: Account) -> Counters:
    """The media's engagement now, grown since it was published."""
    return counters(
        sim.audience(account),
        media.id,
        datetime.fromtimestamp(media.published_at, UTC),
        datetime.fromtimestamp(max(sim.now(), media.published_at), UTC),
    )


def insight_values(sim: InstagramSim, media: Media, account: Account) -> dict[str, int]:
    """Every metric the media's product type supports (reference §1.6)."""
    now = counted(sim, media, account)
    values = {
        "views": now.views,
        "reach": now.reach,
        "likes": now.likes,
        "comments": now.comments,
        "shares": now.shares,
        "saved": now.saves,
        "total_interactions": now.likes + now.comments + now.shares + now.saves,
    }
    if media.product_type == "REELS":
        values["ig_reels_avg_watch_time"] = 4_200 if now.views else 0
        values["ig_reels_video_view_total_time"] = now.views * 4_200
    else:
        values["profile_visits"] = now.views // 50
        values["follows"] = now.views // 400
    return values


def select(values: dict[str, Any], fields: Fields, node_type: str) -> dict[str, Any] | Response:
    """The requested fields of a node; an unknown one fails the call, as on Graph."""
    data: dict[str, Any] = {}
    for name, _sub in fields:
        if name not in values:
            return problems.nonexisting_field(name, node_type)
        data[name] = values[name]
    return data


class ReadRoutes:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.sim = graph.sim
        self.store = graph.store

    def router(self) -> APIRouter:
        routes: list[tuple[str, Callable[[str], str], Handler]] = [
            ("/{version}/{node_id}", self._lookup_bucket, self.lookup),
            ("/{version}/{node_id}/media", fixed_bucket("media_list"), self.media_list),
            ("/{version}/{node_id}/insights", fixed_bucket("insights"), self.insights),
        ]
        if self.graph.host == "facebook":
            routes.append(("/{version}/{node_id}/accounts", fixed_bucket("accounts"), self.pages))
        router = APIRouter()
        for path, bucket, handler in routes:
            endpoint = self.graph.guarded(bucket, handler)
            router.add_api_route(path, endpoint, methods=["GET"], name=handler.__name__)
        return router

    def _lookup_bucket(self, node_id: str) -> str:
        if node_id == "me":
            return "me"
        return "container_status" if self.store.get_container(node_id) else "node"

    def _answer(
        self, caller: Caller, values: dict[str, Any], fields: Fields, node_type: str
    ) -> Response:
        data = select(values, fields, node_type)
        if isinstance(data, Response):
            return data
        return GraphJSONResponse(data, headers=caller.headers)

    # -- node values ---------------------------------------------------------------------

    def account_values(self, caller: Caller, account: Account) -> dict[str, Any]:
        values: dict[str, Any] = {
            "id": account.scoped_id if caller.host == "instagram" else account.id,
            "username": account.username,
            "name": account.name,
            "profile_picture_url": f"{CDN}/{account.id}.jpg",
            "followers_count": self.sim.audience(account).size,
            "follows_count": 150,
            "media_count": self.store.media_count(account.id),
            "biography": "",
            "website": "",
        }
        if caller.host == "instagram":  # Instagram Login: the app-scoped id, and these two
            values["user_id"] = account.id
            values["account_type"] = account.account_type
        return values

    def media_values(self, media: Media, account: Account) -> dict[str, Any]:
        now = counted(self.sim, media, account)
        extension = "mp4" if media.media_type == "VIDEO" else "jpg"
        return {
            "id": media.id,
            "caption": media.caption,
            "media_type": media.media_type,
            "media_product_type": media.product_type,
            "permalink": media.permalink,
            "shortcode": media.shortcode,
            "timestamp": iso(media.published_at),
            "like_count": now.likes,
            "comments_count": now.comments,
            "username": account.username,
            "owner": {"id": account.id},
            "media_url": f"{CDN}/{media.id}.{extension}",
            "is_comment_enabled": True,
        }

    def page_values(self, caller: Caller, page: Page, ig_fields: Fields | None) -> dict[str, Any]:
        values: dict[str, Any] = {"id": page.id, "name": page.name, "category": "Brand"}
        account = self.store.get_account(page.ig_account_id) if page.ig_account_id else None
        if account is not None and account.professional:  # only professional accounts link
            linked = self.account_values(caller, account)
            values["instagram_business_account"] = {
                name: linked[name] for name, _sub in ig_fields or ID_ONLY if name in linked
            }
        return values

    # -- endpoints -----------------------------------------------------------------------

    async def lookup(self, request: Request, caller: Caller, node_id: str) -> Response:
        fields = parse_fields(caller.params.get("fields", ""))
        subject = caller.grant.subject_id
        if caller.host == "facebook" and node_id in ("me", subject):
            user = self.store.get_fb_user(subject)
            if user is None:
                return problems.unsupported(node_id)
            first, _, last = user.name.partition(" ")
            values = {"id": user.id, "name": user.name, "first_name": first, "last_name": last}
            return self._answer(caller, values, fields or [("id", None), ("name", None)], "User")
        account = self.graph.ig_account(caller, node_id)
        if account is not None:
            if not caller.allowed("basic"):
                return problems.no_permission()
            return self._answer(
                caller, self.account_values(caller, account), fields or ID_ONLY, "IGUser"
            )
        container = self.store.get_container(node_id) if node_id.isdigit() else None
        if container is not None and self.graph.ig_account(caller, container.owner_id):
            status_code, status = container.status(self.sim.now())
            values = {"id": container.id, "status_code": status_code, "status": status}
            return self._answer(caller, values, fields or ID_ONLY, "ShadowIGMediaBuilder")
        found = self.graph.media_for(caller, node_id)
        if found is not None:
            return self._answer(caller, self.media_values(*found), fields or ID_ONLY, "IGMedia")
        owned = self.store.get_page(node_id) if caller.host == "facebook" else None
        if owned is not None and owned[0] == subject:
            ig_fields = dict(fields).get("instagram_business_account")
            page = self.page_values(caller, owned[1], ig_fields)
            page.setdefault("instagram_business_account", None)
            data = select(page, fields or ID_ONLY, "Page")
            if isinstance(data, Response):
                return data
            body = {key: value for key, value in data.items() if value is not None}
            return GraphJSONResponse(body, headers=caller.headers)
        return problems.unsupported(node_id)

    async def pages(self, request: Request, caller: Caller, node_id: str) -> Response:
        """``GET /me/accounts``: the Pages the user manages (with ``pages_show_list``)."""
        if node_id not in ("me", caller.grant.subject_id):
            return problems.unsupported(node_id)
        fields = parse_fields(caller.params.get("fields", "")) or [("id", None), ("name", None)]
        ig_fields = dict(fields).get("instagram_business_account")
        pages = self.store.pages(caller.grant.subject_id) if caller.allowed("pages") else []
        data = []
        for page in pages:
            values = self.page_values(caller, page, ig_fields)
            values.setdefault("instagram_business_account", None)
            row = select(values, fields, "Page")
            if isinstance(row, Response):
                return row
            data.append({key: value for key, value in row.items() if value is not None})
        cursors = {"before": _cursor(f"page:{0}"), "after": _cursor(f"page:{len(data)}")}
        body = {"data": data, "paging": {"cursors": cursors}}
        return GraphJSONResponse(body, headers=caller.headers)

    async def media_list(self, request: Request, caller: Caller, node_id: str) -> Response:
        """The account's media, newest first, with cursor and time-based paging."""
        account = self.graph.ig_account(caller, node_id)
        if account is None:
            return problems.unsupported(node_id)
        if not caller.allowed("basic"):
            return problems.no_permission()
        params = caller.params
        fields = parse_fields(params.get("fields", "")) or ID_ONLY
        try:
            limit = min(max(int(params.get("limit", "25")), 1), 100)
            since = float(params["since"]) if params.get("since") else None
            until = float(params["until"]) if params.get("until") else None
            below = _media_cursor(params["after"]) if params.get("after") else None
        except ValueError:
            return problems.invalid_parameter("(#100) Invalid paging or time parameter")
        found = self.store.list_media(
            account.id, limit=limit + 1, before=below, since=since, until=until
        )
        page = found[:limit]
        data = []
        for media in page:
            row = select(self.media_values(media, account), fields, "IGMedia")
            if isinstance(row, Response):
                return row
            data.append(row)
        body: dict[str, Any] = {"data": data}
        if page:
            first, last = page[0], page[-1]
            after = _cursor(f"{last.published_at!r}:{last.id}")
            paging: dict[str, Any] = {
                "cursors": {"before": _cursor(f"{first.published_at!r}:{first.id}"), "after": after}
            }
            if len(found) > limit:
                query = urlencode({**dict(request.query_params), "after": after})
                paging["next"] = str(request.url.replace(query=query))
            body["paging"] = paging
        return GraphJSONResponse(body, headers=caller.headers)

    async def insights(self, request: Request, caller: Caller, node_id: str) -> Response:
        """Lifetime metrics of one media; an unsupported metric fails the whole call."""
        found = self.graph.media_for(caller, node_id)
        if found is None:
            return problems.unsupported(node_id)
        if not caller.allowed("insights"):
            return problems.no_permission()
        media, _account = found
        metrics = [name for name in caller.params.get("metric", "").split(",") if name]
        if not metrics:
            return problems.invalid_parameter("(#100) The parameter metric is required")
        values = insight_values(self.sim, *found)
        unsupported = [name for name in metrics if name not in values]
        if unsupported:
            return problems.invalid_parameter(
                f"(#100) The Media Insights API does not support the {', '.join(unsupported)}"
                " metric for this media product type."
            )
        data = [
            {
                "name": name,
                "period": "lifetime",
                "values": [{"value": values[name]}],
                "title": name.replace("_", " ").capitalize(),
                "description": f"The {name.replace('_', ' ')} of this media.",
                "id": f"{media.id}/insights/{name}/lifetime",
            }
            for name in metrics
        ]
        return GraphJSONResponse({"data": data}, headers=caller.headers)


def _cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def _media_cursor(cursor: str) -> tuple[float, str]:
    """(published at, id) of the last media of the page before."""
    try:
        published, _, media_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return float(published), media_id
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("bad cursor") from exc
