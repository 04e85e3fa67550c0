"""Mechanism the simulators share: the clock, the SQLite file, fault tables, the admin
knob endpoints and the consent page. Platform semantics (error shapes, paths, field names,
validation rules) stay in each simulator's own package."""
