"""A local simulator of TikTok's Login Kit v2, Content Posting API and Display API.
Shares nothing with Kairos."""

from sandbox.tiktok.app import create_tiktok_app
from sandbox.tiktok.config import TikTokSimConfig

__all__ = ["TikTokSimConfig", "create_tiktok_app"]
