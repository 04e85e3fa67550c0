"""Outbound network access to addresses that users supply."""
