"""Click through a sandbox platform's consent page the way a person would in a browser.

``kairos up`` uses it to connect its first sandbox account through the real OAuth flow, and
tests use it to drive the same flow. It only understands the simulators' consent forms.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class _ConsentForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


def approve(authorization_url: str, *, username: str, client: httpx.Client | None = None) -> str:
    """Open the consent page, approve as ``username``; return where the platform redirects."""
    http = client or httpx.Client(timeout=10)
    try:
        page = http.get(authorization_url)
        page.raise_for_status()
        form = _ConsentForm()
        form.feed(page.text)
        if form.action is None:
            raise ValueError("the authorization page has no consent form")
        decision = http.post(
            urljoin(str(page.url), form.action),
            data={**form.fields, "username": username, "action": "allow"},
            follow_redirects=False,
        )
        location = decision.headers.get("location")
        if decision.status_code not in (302, 303) or not location:
            raise ValueError(f"consent was not granted (HTTP {decision.status_code})")
        return str(location)
    finally:
        if client is None:
            http.close()
