from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the project; tests that need it skip elsewhere."""
    if not SHARED.is_dir():
        pytest.skip(f"benchmark images not present at {SHARED}")
    return SHARED
