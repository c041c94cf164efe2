"""Shared fixtures: one default engine for the whole run (building one
compiles the pattern sets, which is the slow part)."""

import pytest

from llm_security import SecurityEngine


@pytest.fixture(scope="session")
def engine() -> SecurityEngine:
    return SecurityEngine()
