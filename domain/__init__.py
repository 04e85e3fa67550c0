"""Kairos domain model: aggregates, events, invariants and content rules (no I/O)."""
