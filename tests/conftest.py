import os
from pathlib import Path

import pytest

os.environ.setdefault("UNBLUR_NO_PROGRESS", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return DATA
