"""A local simulator of X (Twitter) OAuth 2.0 + API v2. Shares nothing with Kairos."""

from sandbox.x.app import create_x_app
from sandbox.x.config import XSimConfig

__all__ = ["XSimConfig", "create_x_app"]
