from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pytest_configure(config):
    """``SRLIB_TEST_EXTENSIONS=1``: the README's extension examples in place for the whole
    run (``tests/extensions.py``): no test may depend on a table's exact contents."""
    import os

    if os.environ.get("SRLIB_TEST_EXTENSIONS") == "1":
        import tempfile

        import extensions

        extensions.install(pytest.MonkeyPatch())
        # the kernels that train runs are other processes: they install it at start-up too
        site = Path(tempfile.mkdtemp(prefix="srlib-ext-"))
        (site / "sitecustomize.py").write_text(
            f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "import pytest, extensions\nextensions.install(pytest.MonkeyPatch())\n")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(site), os.environ.get("PYTHONPATH")]))


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


def write_micro_grid(root: Path) -> Path:
    """A micro grid file under ``root`` (bicubic, two trained variants, one made to fail,
    4 iterations on small images), for tests that run the whole runner; returns its path."""
    import yaml

    train, test = write_small_sets(root, n_train=2, n_test=2)
    grid = {
        "name": "micro",
        "defaults": {"preset": "quick", "iters": 4, "batch": 2, "patch": 16, "nf": 8, "nb": 1,
                     "gc": 4, "log_every": 2, "device": "cpu", "data": train, "test_data": [test]},
        "seeds": [0],
        "variants": {
            "bicubic": {"baseline": "bicubic"},
            "pixel/pixelshuffle": {"loss": "pixel", "upsampler": "pixelshuffle"},
            "down/pixelshuffle": {"loss": "down", "upsampler": "pixelshuffle"},
            # fails when it runs (every value is valid, so the grid loads): no training
            # image is as large as its patch
            "broken": {"loss": "down", "upsampler": "nearest", "patch": 4096},
        },
        "notebook_params": {"01_manifold": {"toy_steps": 10}, "03_artifacts": {"crop": 32}},
    }
    cfg = root / "micro.yaml"
    cfg.write_text(yaml.safe_dump(grid))
    return cfg


def interrupt_at(monkeypatch, call: int) -> None:
    """SIGTERM to this process during the ``call``-th training batch, as a scheduler
    would send it."""
    import os
    import signal

    from srlib.data import PatchSampler

    original, count = PatchSampler.sample, {"n": 0}

    def sample(self):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(PatchSampler, "sample", sample)


def legend_clear_of_axes(fig) -> bool:
    """Whether every legend of ``fig`` lies outside every axes' box (covers no point)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends, "the figure has no legend"
    return all(not leg.get_window_extent(r).overlaps(ax.get_window_extent(r))
               for leg in legends for ax in fig.axes)


def keys_cubic(t: float) -> float:
    """Keys' cubic kernel with a = -0.5 (MATLAB's), one value at a time: the plain
    reference the operator tests compare with."""
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0
