"""A stochastic generator (``noise``): samples by seed, today's output without noise, K
samples evaluated as the NTIRE 2021 challenge does, bad input, bit-exact resume."""

import dataclasses
import json
import math
import warnings

import pandas as pd
import pytest
import torch
from conftest import interrupt_at, write_small_sets

from srlib import runs
from srlib.data import eval_pair, list_images, load_image, to_float
from srlib.evaluate import draw_samples
from srlib.evaluate import main as evaluate_main
from srlib.losses import Loss
from srlib.metrics import quantize
from srlib.models import UPSAMPLERS, RRDBNet, build_generator
from srlib.resize import BicubicDegradation
from srlib.train import Config, Interrupted, _build, check_inputs, config_differences, train


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("data"))


def tiny(upsampler: str = "nearest", scale: int = 4, **kw) -> RRDBNet:
    return RRDBNet(scale=scale, upsampler=upsampler, nf=8, nb=1, gc=4, **kw)


def tiny_config(sets, out, **kw) -> Config:
    return Config(**{"loss": "adv", "consistency": "project", "noise": 2, "eval_samples": 3,
                     "upsampler": "nearest", "iters": 3, "out": str(out), "data": sets[0],
                     "test_data": [sets[1]], "batch": 2, "patch": 16, "nf": 8, "nb": 1,
                     "gc": 4, "d_nf": 8, "device": "cpu", "progress": False} | kw)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- the generator ------------------------------------------------------------------------

@pytest.mark.parametrize("upsampler", UPSAMPLERS)
def test_samples_differ_with_the_seed_and_repeat_with_it(upsampler):
    torch.manual_seed(0)
    g = tiny(upsampler, scale=2, noise=2).eval()
    lr = torch.rand(1, 3, 8, 8)
    h = 16 if upsampler == "pre" else 8  # the noise lives where the body runs
    assert g.sample_noise(lr, 0).shape == (1, 2, h, h)
    with torch.no_grad():
        s0, s0_again, s1 = (g(lr, g.sample_noise(lr, k)) for k in (0, 0, 1))
        plain = g(lr)  # eval mode without z: the noise of seed 0, sample 0
    assert torch.equal(s0, s0_again) and torch.equal(plain, s0)
    assert (s0 - s1).abs().max() > 1e-3
    g.train()  # training draws z from torch's global generator
    with torch.no_grad():
        torch.manual_seed(7)
        a, b = g(lr), g(lr)
        torch.manual_seed(7)
        a_again = g(lr)
    assert torch.equal(a, a_again) and (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
def test_noise_zero_is_todays_generator_output_and_rng_use(upsampler):
    lr = torch.rand(2, 3, 8, 8)
    gens, rng = {}, {}
    for key, kw in (("today", {}), ("zero", {"noise": 0}), ("two", {"noise": 2})):
        torch.manual_seed(1)
        gens[key] = tiny(upsampler, **kw)
        rng[key] = torch.get_rng_state()
    today, zero, two = gens["today"], gens["zero"], gens["two"]
    assert same_weights(today, zero) and torch.equal(rng["today"], rng["zero"])
    assert zero.noise == 0 and zero.conv_noise is None
    # built last, the noise layer leaves every other weight as it was
    shared = {k: v for k, v in two.state_dict().items() if not k.startswith("conv_noise.")}
    assert list(shared) == list(today.state_dict())
    assert all(torch.equal(v, today.state_dict()[k]) for k, v in shared.items())
    for mode in (True, False):
        outs, after = [], []
        for g in (today, zero):
            g.train(mode)
            torch.manual_seed(3)
            with torch.no_grad():
                outs.append(g(lr))
            after.append(torch.get_rng_state())
        torch.manual_seed(3)
        untouched = torch.get_rng_state()
        assert torch.equal(*outs)
        assert torch.equal(after[0], untouched) and torch.equal(after[1], untouched)
    torch.manual_seed(1)
    built = build_generator("quick", 4, upsampler, nf=8, nb=1, gc=4)
    torch.manual_seed(1)
    assert same_weights(built, build_generator("quick", 4, upsampler, noise=0, nf=8, nb=1, gc=4))


def test_projected_samples_are_each_consistent():
    torch.manual_seed(0)
    g = tiny("pixelshuffle", noise=3, consistency="project").eval()
    lr = torch.rand(3, 8, 8)
    samples = draw_samples(g, lr, 4)
    assert samples.shape == (4, 3, 32, 32)
    err = (BicubicDegradation(4).down(samples) - lr).abs().amax(dim=(1, 2, 3))
    assert (err < 1e-5).all(), err  # measured: about 1e-7
    assert min((samples[i] - samples[j]).abs().max() for i in range(4)
               for j in range(i)) > 1e-3  # only the null space varies, but it does


def test_noise_input_bad_use_is_refused():
    lr = torch.rand(1, 3, 8, 8)
    plain = tiny()
    with pytest.raises(ValueError, match=r"z given, but this generator has no noise input"):
        plain(lr, torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"no noise input \(noise=0\)"):
        plain.sample_noise(lr, 0)
    with pytest.raises(ValueError, match=r"config field noise > 0.*noise=0"):
        draw_samples(plain.eval(), lr[0], 2)
    with pytest.raises(ValueError, match=r"z must have shape \(1, 2, 8, 8\)"):
        tiny(noise=2)(lr, torch.zeros(1, 3, 8, 8))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="noise must be a non-negative integer"):
            tiny(noise=bad)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        draw_samples(tiny(noise=2).eval(), lr[0], 0)


# ---- the config ---------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,match", [
    ("eval_samples", 0, r"eval_samples must be a positive integer \(K >= 1 samples per test "
                        r"image\), got 0"),
    ("eval_samples", 2.0, "eval_samples must be a positive integer"),
    ("noise", -1, r"noise must be a non-negative integer \(0: no noise input, deterministic; "
                  r"k > 0: k noise channels\), got -1"),
    ("noise", True, "noise must be a non-negative integer"),
])
def test_bad_noise_config_is_refused_before_training(tiny_sets, tmp_path, field, value, match):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match=match):
        train(tiny_config(tiny_sets, out, **{field: value}))
    assert not (out / runs.CONFIG).exists()


def caught(c: Config) -> list[str]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check_inputs(c.resolved())
    return [str(x.message) for x in w]


@pytest.mark.parametrize("kw,expected", [
    ({}, None),  # adv + project + noise: the intended use
    ({"loss": "pixel+0.005*adv"}, None),
    ({"loss": "pixel"}, "noise 2 with loss 'pixel': without an adv term"),
    ({"loss": "down", "consistency": "none"}, "its samples will barely differ"),
    ({"noise": 0, "eval_samples": 3}, "eval_samples 3 is unused: noise is 0"),
    ({"noise": 0, "eval_samples": 10}, None),  # the default: nothing to say
])
def test_noise_warnings(tiny_sets, tmp_path, kw, expected):
    got = caught(tiny_config(tiny_sets, tmp_path / "r", **kw))
    if expected is None:
        assert got == []
    else:
        assert len(got) == 1 and expected in got[0], got


def fake_run(out, noise: int) -> dict:
    """A finished-looking run folder of a generator with ``noise`` channels."""
    c = dataclasses.asdict(Config(nf=8, nb=1, gc=4, scale=4, out=str(out),
                                  noise=noise).resolved())
    out.mkdir(parents=True)
    (out / runs.CONFIG).write_text(json.dumps(c))
    torch.manual_seed(0)
    g = build_generator("quick", 4, c["upsampler"], noise=noise, nf=8, nb=1, gc=4)
    torch.save(g.state_dict(), out / runs.GENERATOR)
    return c


def test_a_deterministic_source_fine_tunes_into_noise(tiny_sets, tmp_path):
    old = tmp_path / "old"
    cfg = fake_run(old, 0)
    assert runs.load_generator(old).noise == 0
    c = Config(**cfg).resolved()
    assert config_differences(old, c) == []
    assert config_differences(old, dataclasses.replace(c, noise=2)) == ["noise: 0 -> 2"]
    # a deterministic source starts a noise generator: its weights, conv_noise fresh
    c = tiny_config(tiny_sets, tmp_path / "r", init_from=str(old)).resolved()
    check_inputs(c)
    nets = _build(c, Loss(c.loss, BicubicDegradation(4)), torch.device("cpu"))
    src = runs.load_generator(old).state_dict()
    mine = nets.g.state_dict()
    assert set(mine) - set(src) == {"conv_noise.weight"}
    assert all(torch.equal(v, mine[k]) for k, v in src.items())
    # a noise source into another noise count (or none) is another architecture
    noisy = tmp_path / "noisy"
    fake_run(noisy, 3)
    assert runs.load_generator(noisy).noise == 3
    for n in (0, 2):
        with pytest.raises(ValueError, match=rf"its generator differs \(noise 3 vs {n}\)"):
            check_inputs(tiny_config(tiny_sets, tmp_path / "x", noise=n,
                                     init_from=str(noisy)).resolved())


# ---- training and evaluation --------------------------------------------------------------

def test_training_writes_k_samples_their_table_and_metrics(tiny_sets, tmp_path, capsys):
    out = tmp_path / "r"
    r = train(tiny_config(tiny_sets, out))
    s = r["samples"]["test"]
    assert s["n_samples"] == 3 and s["n_images"] == 2 and s["lpips_kind"] == r["lpips_kind"]
    assert s["diversity"] >= 0 and math.isfinite(s["lr_psnr_worst"])
    assert s["lr_psnr_worst"] <= s["lr_psnr_mean"] and s["lr_psnr_ntire_worst"] > 0
    assert s["lr_psnr_worst"] > 50  # projected: consistent up to 8-bit rounding
    table = pd.read_csv(out / "eval" / "test" / "samples.csv")
    names = [p.stem for p in list_images(tiny_sets[1])]
    assert table.image.tolist() == names
    assert {"lr_psnr_mean", "lr_psnr_worst", "psnr_y_mean_image", "diversity",
            "lr_psnr_ntire_mean", "lr_psnr_ntire_worst"} <= set(table.columns)
    g = runs.load_generator(out)
    assert g.noise == 2 and g.consistency == "project"
    op = BicubicDegradation(4)
    for name, path in zip(names, list_images(tiny_sets[1]), strict=True):
        folder = out / "eval" / "test" / "samples" / name
        assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "2.png"]
        # sample 0 is the run's regular output
        assert (folder / "0.png").read_bytes() == (out / "eval" / "test" / f"{name}.png"
                                                   ).read_bytes()
        # reproducible: the saved generator draws the saved samples again
        _, lr = eval_pair(load_image(path), op)
        again = quantize(draw_samples(g, lr, 3))
        saved = torch.stack([to_float(load_image(folder / f"{i}.png")) for i in range(3)])
        assert torch.equal(again, saved)
        assert not torch.equal(saved[0], saved[1])
    # the command line draws the same samples again, into another folder
    again = tmp_path / "again"
    assert evaluate_main(["--model", str(out), "--data", tiny_sets[1], "--samples", "3",
                          "--out", str(again), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"]["diversity"] == pytest.approx(
        s["diversity"])
    assert pd.read_csv(again / "eval" / "test" / "samples.csv").equals(table)


@pytest.mark.parametrize("argv, message", [
    (["--samples", "2"], "--samples 2: expected K >= 1 samples per image, with --out"),
    (["--samples", "-1", "--out", "x"], "--samples -1: expected K >= 1"),
])
def test_samples_on_the_command_line_need_k_and_a_folder(argv, message, capsys):
    with pytest.raises(SystemExit):
        evaluate_main(["--model", "bicubic", *argv])
    assert message in capsys.readouterr().err


def test_samples_of_a_generator_without_noise_are_refused(tiny_sets, tmp_path, capsys):
    fake_run(tmp_path / "plain", 0)
    assert evaluate_main(["--model", str(tmp_path / "plain"), "--data", tiny_sets[1],
                          "--samples", "2", "--out", str(tmp_path / "s")]) == 2
    assert "samples need a generator with a noise input" in capsys.readouterr().err


def test_resume_with_noise_gives_the_same_weights(tiny_sets, tmp_path, monkeypatch):
    kw = {"iters": 6, "ckpt_every": 100, "eval_samples": 1, "loss": "down+0.005*adv",
          "consistency": "none"}
    whole = train(tiny_config(tiny_sets, tmp_path / "whole", **kw))
    cfg = tiny_config(tiny_sets, tmp_path / "cut", **kw)
    interrupt_at(monkeypatch, 4)
    with pytest.raises(Interrupted, match="iteration 4"):
        train(cfg)
    state = torch.load(tmp_path / "cut" / runs.CHECKPOINT, weights_only=False)
    assert state["iter"] == 4 and "torch_rng" in state  # z is drawn from torch's generator
    monkeypatch.undo()
    torch.manual_seed(123)  # whatever the global generator holds when the run resumes
    resumed = train(cfg)
    assert resumed["resumed_from_iter"] == 4
    assert same_weights(runs.load_generator(tmp_path / "whole"),
                        runs.load_generator(tmp_path / "cut"))
    assert resumed["samples"] == whole["samples"]


# ---- noise at several depths ---------------------------------------------------------------

@pytest.mark.parametrize("upsampler", ["nearest", "pixelshuffle", "pre"])
def test_samples_at_several_depths_differ_with_the_seed_and_repeat_with_it(upsampler):
    """Noise at every depth: z's channels are the depths' (hr: s^2 per noise channel, but
    for pre), two seeds give two samples, one seed the same sample; each depth alone moves
    the output."""
    from srlib.models import NOISE_DEPTHS, RRDBNet

    lr = torch.rand(1, 3, 8, 8)
    torch.manual_seed(0)
    g = RRDBNet(4, upsampler, nf=8, nb=1, gc=4, noise=2, noise_at=list(NOISE_DEPTHS)).eval()
    hr_channels = 2 if upsampler == "pre" else 2 * 16
    assert g.noise_channels() == {"first": 2, "body": 2, "hr": hr_channels}
    assert g.sample_noise(lr, 0).shape[1] == 4 + hr_channels
    with torch.no_grad():
        s0, s0_again, s1 = (g(lr, g.sample_noise(lr, k)) for k in (0, 0, 1))
        assert torch.equal(s0, s0_again) and (s0 - s1).abs().max() > 1e-4
        z = g.sample_noise(lr, 0)
        start = 0
        for n in g.noise_channels().values():  # perturb one depth's part of z only
            z2 = z.clone()
            z2[:, start:start + n] += 1.0
            start += n
            assert (g(lr, z2) - s0).abs().max() > 1e-5


def test_a_noise_depth_the_generator_does_not_have_is_refused_naming_the_choices():
    from srlib.models import RRDBNet

    with pytest.raises(ValueError, match=r"noise_at must be a non-empty list of distinct depths "
                                         r"from first, body, hr, got \['deep'\]"):
        RRDBNet(4, "nearest", nf=8, nb=1, gc=4, noise=2, noise_at=["deep"])
    with pytest.raises(ValueError, match="noise_at must be"):
        Config(noise=2, noise_at=["first", "first"]).resolved()


def test_a_noise_generator_fine_tunes_into_more_depths(tiny_sets, tmp_path):
    """A one-depth noise run starts a three-depth one: its weights load, the new depths'
    convs start fresh."""
    src = tmp_path / "src"
    train(Config(loss="pixel+0.005*adv", upsampler="nearest", iters=2, out=str(src),
                 data=tiny_sets[0], test_data=[tiny_sets[1]], batch=2, patch=16, nf=8, nb=1,
                 gc=4, d_nf=8, device="cpu", progress=False, noise=2, eval_samples=2))
    out = tmp_path / "ft"
    train(Config(loss="pixel+0.005*adv", upsampler="nearest", iters=2, out=str(out),
                 data=tiny_sets[0], test_data=[tiny_sets[1]], batch=2, patch=16, nf=8, nb=1,
                 gc=4, d_nf=8, device="cpu", progress=False, noise=2, eval_samples=2,
                 noise_at=["first", "body", "hr"], init_from=str(src)))
    g = runs.load_generator(out)
    assert g.noise_at == ["first", "body", "hr"] and g.conv_noise_hr is not None


def test_the_mode_seeking_term_needs_noise_and_pushes_samples_apart(tiny_sets, tmp_path):
    """ms (Mao et al. 2019) on a deterministic generator is refused before training; on a
    noise generator it is finite, and steps on it alone spread two samples further than
    they were."""
    import contextlib

    from srlib.train import Nets, train_step

    with pytest.raises(ValueError, match="the ms term compares two samples"):
        train(Config(loss="pixel+0.1*ms", out=str(tmp_path / "r"), data=tiny_sets[0],
                     test_data=[tiny_sets[1]], device="cpu", progress=False))
    assert not (tmp_path / "r").exists()
    torch.manual_seed(0)
    g = tiny(noise=2, noise_at=["first", "hr"])
    nets = Nets(g, torch.optim.Adam(g.parameters(), lr=1e-3))
    loss = Loss("ms", BicubicDegradation(4))
    lr = torch.rand(2, 3, 8, 8)
    z1, z2 = g.sample_noise(lr, 1), g.sample_noise(lr, 2)

    def spread() -> float:
        with torch.no_grad():
            return float((g(lr, z1) - g(lr, z2)).abs().mean())

    before = spread()
    for _ in range(20):
        total, terms, _ = train_step(nets, loss, lr.repeat_interleave(4, -1)
                                     .repeat_interleave(4, -2), lr, contextlib.nullcontext())
        assert torch.isfinite(total) and set(terms) == {"ms"}
    assert spread() > 2 * before


def test_the_diversity_sensitive_term_is_capped_and_needs_noise(tiny_sets, tmp_path):
    """ds (DSGAN, Yang et al. 2019) is refused without noise, before training; its value
    is -min(d(SR1, SR2) / mean|z1 - z2|, DS_CAP): equal to the ratio below the cap and to
    -DS_CAP above it, with no gradient there."""
    from srlib.losses import DS_CAP

    with pytest.raises(ValueError, match="the ds term compares two samples"):
        train(Config(loss="pixel+0.1*ds", out=str(tmp_path / "r"), data=tiny_sets[0],
                     test_data=[tiny_sets[1]], device="cpu", progress=False))
    assert not (tmp_path / "r").exists()
    loss = Loss("ds", BicubicDegradation(4))
    assert loss.needs_pair
    hr, lr = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 4, 4)
    for gap, expect in ((0.01, -0.01 / 2), (0.5, -DS_CAP)):
        sr = torch.full((1, 3, 16, 16), 0.4, requires_grad=True)
        other = torch.full((1, 3, 16, 16), 0.4 + gap)
        total, _ = loss(sr, hr, lr, pair=(other, torch.tensor(2.0)))
        assert float(total) == pytest.approx(expect, rel=1e-5)
        total.backward()
        assert (float(sr.grad.abs().max()) > 0) == (gap / 2 < DS_CAP)


def test_the_noise_amplitude_scales_z_and_is_checked():
    from srlib.models import RRDBNet

    lr = torch.rand(1, 3, 8, 8)
    torch.manual_seed(0)
    one = RRDBNet(4, "nearest", nf=8, nb=1, gc=4, noise=2)
    torch.manual_seed(0)
    three = RRDBNet(4, "nearest", nf=8, nb=1, gc=4, noise=2, noise_std=3.0)
    torch.testing.assert_close(three.sample_noise(lr, 5), 3 * one.sample_noise(lr, 5))
    with pytest.raises(ValueError, match="noise_std must be a positive number, got 0"):
        Config(noise=2, noise_std=0).resolved()
