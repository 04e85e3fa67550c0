"""The TikTok adapter: Login Kit v2 (OAuth 2.0 with PKCE, rotating refresh tokens), Direct
Post through the Content Posting API, and metrics from the Display API, over httpx.

Works against the real TikTok (``https://open.tiktokapis.com``) or the ``sandbox/``
simulator (``http://127.0.0.1:8001/tiktok``): only the base URLs differ. This package does
not log.

- :mod:`.api`: the v2 envelope, its errors, a publish's status and checkpoints;
- :mod:`.upload`: the chunk plan and the FILE_UPLOAD;
- :mod:`.settling`: waiting for a post to publish, finding one a lost init published;
- :mod:`.publishing`: one post from its checkpoints to TikTok (how attempts settle);
- :mod:`.adapter`: the login, the profile, metrics, and the adapter itself.
"""

from interfaces.platforms.tiktok.adapter import TikTokAdapter
from interfaces.platforms.tiktok.api import PUBLISH_ID, PULL_REQUESTED_AT
from interfaces.platforms.tiktok.upload import ChunkPlan

__all__ = ["PUBLISH_ID", "PULL_REQUESTED_AT", "ChunkPlan", "TikTokAdapter"]
