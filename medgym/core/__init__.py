"""Core data model shared by every layer (re-exported from :mod:`medgym.types`)."""
