from __future__ import annotations

from pathlib import Path

import pytest

from shared.core.mapping import SyncMapping, load_mapping

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sample_mapping() -> SyncMapping:
    """The mapping the local host ships with: every entity kind, every field type."""
    return load_mapping((ROOT / "config" / "mapping.json").read_text())
