"""The Instagram adapters: Instagram Login (``graph.instagram.com``, provider ``instagram``)
and Facebook Login for Business (``graph.facebook.com``, provider ``instagram-facebook``).
Both publish the same way, through containers; only the login and the host differ.

Works against Meta or the ``sandbox/`` simulator (``http://127.0.0.1:8001/instagram/...``):
only the base URLs differ. Tokens never appear in exception messages; this package does
not log.

- :mod:`.graph`: requests, error answers and their mapping to the taxonomy;
- :mod:`.publishing`: one post through containers, checkpointed (how attempts settle);
- :mod:`.publisher`: what both logins share past the login (publish, timeline, insights);
- :mod:`.adapters`: the two logins.
"""

from interfaces.platforms.instagram.adapters import FacebookInstagramAdapter, InstagramAdapter

__all__ = ["FacebookInstagramAdapter", "InstagramAdapter"]
