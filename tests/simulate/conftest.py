"""A small county generated once per test session (a few seconds): most simulator tests read it."""

from __future__ import annotations

import pytest

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from simulate_config import small_config  # noqa: E402

from countyhealth.simulate.county import generate  # noqa: E402


@pytest.fixture(scope="session")
def county(tmp_path_factory):
    out = tmp_path_factory.mktemp("county")
    manifest = generate(out, small_config())
    return out, manifest
