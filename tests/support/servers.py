"""Tests serve ASGI apps exactly as ``kairos up`` does."""

from interfaces.serving import free_port, serve

__all__ = ["free_port", "serve"]
