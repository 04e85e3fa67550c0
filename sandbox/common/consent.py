"""The consent pages of the simulators' OAuth flows, their redirects, and PKCE's S256."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.responses import HTMLResponse, RedirectResponse

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{margin-right:.5rem;padding:.5rem 1.25rem}} .error{{color:#b00020}}</style></head>
<body><p><small>{brand} sandbox &mdash; not the real {brand}</small></p>{body}</body></html>"""


def s256(verifier: str) -> str:
    """PKCE S256: base64url, without padding, of the verifier's SHA-256."""
    digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def page(brand: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    """A page of ``brand``'s sandbox, which says plainly it is not the real one."""
    html = _PAGE.format(title=escape(title), brand=escape(brand), body=body)
    return HTMLResponse(html, status_code=status)


def redirect(url: str, params: Mapping[str, str], fragment: str | None = None) -> RedirectResponse:
    """A 302 to ``url`` with ``params`` added to its query (and ``fragment``, if given,
    in place of its own)."""
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    tail = parts.fragment if fragment is None else fragment
    return RedirectResponse(
        urlunsplit((parts.scheme, parts.netloc, parts.path, query, tail)), status_code=302
    )


@dataclass(frozen=True)
class ConsentCopy:
    """The words of one platform's consent page."""

    brand: str
    title: str
    #: What introduces the list of scopes.
    lead: str
    allow: str
    #: The longest username the platform allows.
    max_username: int


def consent_page(
    copy: ConsentCopy,
    heading: str,
    action: str,
    fields: Mapping[str, str],
    scopes: Iterable[str],
    username: str,
    error: str = "",
) -> HTMLResponse:
    """The form that posts the authorize ``fields`` back to ``action`` with the username
    and the user's choice (``allow`` or ``deny``); a 400 when it shows an ``error``."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    items = "".join(f"<li>{escape(s)}</li>" for s in scopes)
    body = (
        f"<h1>{escape(heading)}</h1>"
        + (f'<p class="error">{escape(error)}</p>' if error else "")
        + f"<p>{escape(copy.lead)}</p><ul>{items}</ul>"
        + f'<form method="post" action="{escape(action)}">'
        + hidden
        + '<label>Username <input type="text" name="username" '
        + f'value="{escape(username)}" maxlength="{copy.max_username}"></label><p>'
        + f'<button type="submit" name="action" value="allow">{escape(copy.allow)}</button>'
        + '<button type="submit" name="action" value="deny">Cancel</button></p></form>'
    )
    return page(copy.brand, copy.title, body, status=400 if error else 200)
