"""Browser tests' shared fixture: where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go for review: ``$SCREENSHOT_DIR`` or the test's temp folder."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
