"""Unit tests: pure Python, no kernel. Hypothesis without deadlines: CI machines are busy."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("durable_nb", deadline=None, max_examples=60)
settings.load_profile("durable_nb")
