"""docs/reliability.md names the test that pins each fault: every name it gives exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_the_reliability_table_names_exists():
    table = (ROOT / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)`", table))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^\s*def (test_\w+)\(", path.read_text(), re.M))
    assert len(named) > 40
    assert sorted(named - defined) == []
