"""Click through a sandbox platform's consent page the way a person would in a browser, and
through Kairos's own account chooser after it.

``kairos up`` uses it to connect its first sandbox accounts through the real OAuth flow, and
tests use it to drive the same flow. It only understands the simulators' consent forms and
the chooser page of ``/api/integrations/{provider}/callback``.
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


class _ChooserForms(HTMLParser):
    """Each account's form on the chooser page: its username, action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, tuple[str, dict[str, str]]] = {}
        self._open: tuple[str, dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and "data-username" in values:
            self._open = (values.get("action", ""), {})
            self.forms[values["data-username"]] = self._open
        elif tag == "input" and self._open is not None and values.get("type") == "hidden":
            self._open[1][values.get("name", "")] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def choose(
    page: httpx.Response, *, username: str, client: httpx.Client | None = None
) -> httpx.Response:
    """On the callback's chooser page, submit the form of the account named ``username``;
    return Kairos's answer (the "Connected @…" page, or why not)."""
    forms = _ChooserForms()
    forms.feed(page.text)
    if username not in forms.forms:
        offered = ", ".join(f"@{name}" for name in forms.forms) or "none"
        raise ValueError(f"the chooser page offers no @{username} (offered: {offered})")
    action, fields = forms.forms[username]
    http = client or httpx.Client(timeout=10)
    try:
        return http.post(urljoin(str(page.url), action), data=fields)
    finally:
        if client is None:
            http.close()


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
