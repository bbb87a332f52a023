"""The bicubic baseline: the published Set5 table, and pinned values on the default data."""

import json

import pytest

from srlib.evaluate import evaluate, main, summary
from srlib.resize import BicubicDegradation

# Published bicubic baseline, Set5 (Y channel, crop s), e.g. in the SRCNN/VDSR/EDSR tables.
PUBLISHED_SET5 = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}

# Measured once with this code on the embedded default test split (3 images); they pin
# the whole pipeline (loading, mod-crop, D, quantisation, bicubic up, Y, crop, SSIM).
PINNED_DEFAULT = {
    2: (32.50122, 0.914765, 40.84328),
    3: (29.98124, 0.852547, 40.14764),
    4: (28.52887, 0.803637, 39.21497),
}


def _bicubic(data: str, scale: int) -> dict:
    op = BicubicDegradation(scale)
    return summary(evaluate(op.up, data, scale)[0], data, scale, "bicubic")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_published_bicubic_set5(scale, shared_datasets):
    r = _bicubic(str(shared_datasets / "Set5"), scale)
    psnr, ssim = PUBLISHED_SET5[scale]
    assert r["n_images"] == 5
    assert abs(r["psnr_y"] - psnr) <= 0.02, r["psnr_y"]
    assert abs(r["ssim_y"] - ssim) <= 0.0015, r["ssim_y"]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pinned_bicubic_default(scale):
    r = _bicubic("default", scale)
    psnr, ssim, lr_psnr = PINNED_DEFAULT[scale]
    assert r["n_images"] == 3 and r["dataset"] == "default"
    assert r["psnr_y"] == pytest.approx(psnr, abs=2e-3)
    assert r["ssim_y"] == pytest.approx(ssim, abs=2e-5)
    assert r["lr_psnr"] == pytest.approx(lr_psnr, abs=2e-3)
    assert r["range_mse"] < r["null_mse"]  # bicubic errs mostly where D cannot see


def test_cli_json(capsys):
    assert main(["--model", "bicubic", "--data", "default", "--scale", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("psnr_y", "ssim_y", "lr_psnr", "n_images", "scale", "dataset"):
        assert key in r
    assert r["scale"] == 4 and r["psnr_y"] == pytest.approx(PINNED_DEFAULT[4][0], abs=2e-3)


def test_cli_table(capsys):
    assert main(["--model", "bicubic", "--scale", "2"]) == 0
    out = capsys.readouterr().out
    assert "astronaut" in out and "mean" in out and "psnr_y" in out


def test_cli_bad_input(capsys):
    assert main(["--model", "bicubic", "--data", "NoSuchSet"]) == 2
    assert "'NoSuchSet' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "edsr"])
    assert "expected one of bicubic, pinv or the folder of a trained run" in capsys.readouterr().err
