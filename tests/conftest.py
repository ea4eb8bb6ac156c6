"""Make ``tests/`` importable so test modules can ``from reference import ...``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest

import cnnkit


@pytest.fixture(params=["fast", "reference"])
def each_engine(request):
    """Run the test once on each engine (``pytestmark = pytest.mark.usefixtures(...)``)."""
    with cnnkit.use_engine(request.param):
        yield request.param
