"""A local simulator of the Instagram Platform (Instagram Login and Facebook Login for
Business, content publishing, insights). Shares nothing with Kairos."""

from sandbox.instagram.app import create_instagram_app
from sandbox.instagram.config import InstagramSimConfig

__all__ = ["InstagramSimConfig", "create_instagram_app"]
