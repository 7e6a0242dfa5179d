"""Precomputed answers: a content-addressed result cache (key, index, lookups)."""
