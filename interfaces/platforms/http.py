"""What every platform adapter does with httpx: one client (its own, or one it is handed
and leaves open), transport failures mapped to ``TransientPlatformError``, and the small
readers of answers the adapters share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import quote, urlencode

import httpx

from application.platforms import TransientPlatformError


class HttpAdapter:
    """An adapter's HTTP client and its lifecycle; a context manager that closes it."""

    #: The platform's name in error messages.
    _platform: ClassVar[str]

    def __init__(
        self, *, http: httpx.Client | None, timeout: float, sleep: Callable[[float], None]
    ) -> None:
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._sleep = sleep

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, *, action: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request; no answer at all is transient."""
        try:
            return self._http.request(method, url, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientPlatformError(
                f"{self._platform} timed out while trying to {action}"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientPlatformError(
                f"Connection to {self._platform} failed while trying to {action}"
                f" ({type(exc).__name__})"
            ) from exc


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to whatever query it already has."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(params, quote_via=quote)}"


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def after(start: datetime, seconds: object) -> datetime | None:
    """``seconds`` (an ``expires_in``) after ``start``, when it is a number."""
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return start + timedelta(seconds=float(seconds))
    return None
