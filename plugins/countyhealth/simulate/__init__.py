"""The simulated county: a seeded generator with ground truth, and source systems in their native shapes.

``countyhealth simulate generate`` writes a county (``county.generate``); ``serve-public-health`` runs its
public-health platform as an HTTP server. Everything is deterministic for a seed. See
docs/simulated-county.md for what each source system looks like.
"""
