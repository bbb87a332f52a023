"""Measurements behind the report: null-space images, artifact scores, the toy, findings."""

import numpy as np
import pandas as pd
import pytest
import torch

from srlib.analysis import artifact_panel, busiest_box, lr_grid_energy, null_perturbation
from srlib.metrics import psnr_rgb
from srlib.report import COLUMNS, findings, format_table, summary_table
from srlib.resize import BicubicDegradation
from srlib.toy import degrade, sample_manifold, toy_scores, train_toy


def test_null_perturbation_is_invisible_to_d_and_hits_its_psnr():
    op = BicubicDegradation(4)
    hr = torch.rand(3, 32, 40, dtype=torch.float64)
    n = null_perturbation(hr, op, target_psnr=25.0)
    assert op.down(n).abs().max() < 1e-12
    assert float(psnr_rgb(hr + n, hr)) == pytest.approx(25.0, abs=1e-6)


def test_lr_grid_energy_separates_periodic_tiling_from_smooth_error():
    s, h = 4, 64
    base = torch.zeros(3, h, h, dtype=torch.float64)
    tile = torch.rand(3, s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    periodic = tile.repeat(1, h // s, h // s)  # the same s x s pattern in every LR cell
    assert lr_grid_energy(periodic, base, s) > 0.95
    y = torch.linspace(0, 1, h, dtype=torch.float64)
    smooth = torch.sin(2 * np.pi * y)[None, :, None] * torch.cos(2 * np.pi * y)[None, None, :]
    assert lr_grid_energy(smooth.expand(3, h, h), base, s) < 0.05


def test_busiest_box_and_panel():
    img = torch.zeros(3, 64, 80, dtype=torch.uint8)
    img[:, 40:56, 8:24] = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    top, left, k = busiest_box(img, 16, 4)
    assert top % 4 == 0 and left % 4 == 0 and k == 16
    assert abs(top - 40) <= 4 and abs(left - 8) <= 4
    panel = artifact_panel(img, {"x": torch.rand(3, 64, 80)}, 4, (top, left, k))
    assert list(panel) == ["HR", "bicubic", "x"]
    for parts in panel.values():
        assert all(v.shape == (3, 16, 16) for v in parts.values())


def test_toy():
    hr, lr = sample_manifold(100, torch.Generator().manual_seed(0))
    assert torch.allclose((hr - 0.5).norm(dim=1), torch.full((100,), 0.3))
    assert torch.allclose(degrade(hr), lr)
    g = train_toy("down", steps=300)
    s = toy_scores(g)
    assert set(s) == {"consistency_rmse", "manifold_rmse", "hr_rmse"}
    assert s["consistency_rmse"] < 0.02  # the downsampled loss is quickly satisfied
    with pytest.raises(ValueError, match="toy loss must be one of"):
        train_toy("l2")


def _results() -> pd.DataFrame:
    rows = []
    spec = {"bicubic": (28.5, 39.0, 2e-3), "pixel/pixelshuffle": (29.0, 35.0, 2e-3),
            "down/pixelshuffle": (20.0, 36.0, 2e-2), "down/nearest": (28.8, 40.0, 2.5e-3)}
    for seed in (0, 1):
        for v, (p, lrp, null) in spec.items():
            if v == "down/pixelshuffle" and seed == 1:
                lrp = 30.0  # the LR-PSNR condition fails at this seed
            rows.append({"variant": v, "loss": v.split("/")[0], "upsampler": "", "seed": seed,
                         "dataset": "set", "status": "done", "psnr_y": p, "ssim_y": 0.8,
                         "lpips": 0.3, "lr_psnr": lrp, "range_mse": 1e-4, "null_mse": null,
                         "lr_psnr_raw": lrp + 1, "clipped": 0.01, "train_seconds": 10.0,
                         "lpips_kind": "stlpips-alex", "iters": 100, "device": "cpu",
                         "error": ""})
    rows.append({"variant": "down/deconv", "seed": 0, "status": "failed",
                 "error": "ValueError: boom"})
    return pd.DataFrame(rows, columns=COLUMNS)


def test_findings_are_computed_from_the_table():
    r = _results()
    text = "\n".join(findings(r, "set"))
    assert "9.00 dB below" in text and "10.0 times" in text
    assert "holds in 1 of 2 seeds" in text
    assert "`down/pixelshuffle` 2.00e-02" in text and "`down/nearest` 2.50e-03" in text
    assert "2 of 3 trained variants score higher" in text
    assert "Failed" in text and "ValueError: boom" in text
    assert "Adversarial" not in text  # no GAN variant in the table: no claim about one


def test_summary_and_table():
    s = summary_table(_results())
    row = s[s.variant == "down/pixelshuffle"].iloc[0]
    assert row.seeds == 2 and row.lr_psnr_mean == pytest.approx(33.0)
    t = format_table(s, "set")
    assert "LPIPS (stlpips-alex)" in t.columns
    assert t.set_index("variant").loc["down/pixelshuffle", "LR-PSNR (dB)"] == "33.00 ± 4.24"
