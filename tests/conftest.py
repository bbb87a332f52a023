from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the project; tests that need it skip elsewhere."""
    if not SHARED.is_dir():
        pytest.skip(f"benchmark images not present at {SHARED}")
    return SHARED


def write_small_sets(root: Path, n_train: int = 3, n_test: int = 2) -> tuple[str, str]:
    """``root/train`` and ``root/test``: 64 x 64 crops of the embedded images, for runs
    whose evaluation must be fast."""
    from PIL import Image

    from srlib.data import load_dataset

    for split, n in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True)
        for name, img in load_dataset("default", split)[:n]:
            crop = img[:, 40:104, 60:124].permute(1, 2, 0).numpy()
            Image.fromarray(crop).save(root / split / f"{name}.png")
    return str(root / "train"), str(root / "test")
