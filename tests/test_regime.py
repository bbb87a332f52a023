"""The training regime: presets reach Config, the learning-rate schedules, the EMA of the
generator's weights (what is saved, evaluated and resumed) and bf16 autocast's fallback."""

import json

import pytest
import torch
from conftest import interrupt_at, write_small_sets

import srlib.train as train_mod
from srlib.evaluate import main as evaluate_main
from srlib.models import PRESETS
from srlib.train import (
    Config,
    Interrupted,
    argument_parser,
    learning_rate_at,
    preset_value,
    train,
)


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("data"))


def tiny_config(tmp_path, sets, **kw) -> Config:
    base = dict(loss="pixel", upsampler="nearest", iters=8, seed=0, out=str(tmp_path / "run"),
                data=sets[0], test_data=[sets[1]], batch=2, patch=16, nf=8, nb=1, gc=4,
                ckpt_every=100, log_every=2, device="cpu", progress=False, eval_lpips=False,
                twins=[])
    return Config(**(base | kw))


# ---- presets ------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_field_of_a_preset_reaches_config(preset):
    c = Config(preset=preset).resolved()
    for k, v in PRESETS[preset].items():
        assert getattr(c, k) == v, k
        assert preset_value({"preset": preset}, k) == v, k
    # a flag (or a grid's field) overrides each of them
    assert Config(preset=preset, batch=3, iters=7).resolved().batch == 3
    assert preset_value({"preset": preset, "iters": 7}, "iters") == 7


def test_the_study_preset_needs_no_other_flag():
    args = vars(argument_parser().parse_args(["--preset", "study", "--loss", "pixel"]))
    c = Config(**args).resolved()
    study = PRESETS["study"]
    assert (c.patch, c.batch, c.iters, c.schedule, c.ema_decay, c.skip) == \
        (study["patch"], study["batch"], study["iters"], study["schedule"], study["ema_decay"],
         study["skip"])
    # the skip of the preset applies to every upsampler; --skip none takes it away
    assert Config(preset="study", upsampler="pre").resolved().skip == study["skip"]
    assert Config(preset="study", skip="none").resolved().skip == "none"


@pytest.mark.parametrize("field,value,match", [
    ("preset", "fast", "preset must be one of quick"), ("batch", 0, "batch must be a positive"),
    ("patch", 90, "patch must be a multiple of scale 4, got 90"),
    ("schedule", "linear", "schedule must be one of step, cosine"),
    ("ema_decay", 1.0, r"ema_decay must be a number in \[0, 1\)"),
    ("precision", "fp16", "precision must be one of auto, bf16, fp32"),
])
def test_a_preset_field_that_cannot_work_is_refused_naming_it(field, value, match):
    with pytest.raises(ValueError, match=match):
        Config(**({"preset": "study"} | {field: value})).resolved()


# ---- the learning-rate schedule ----------------------------------------------------------

def test_the_step_schedule_is_the_multistep_one_it_replaces():
    c = Config(iters=100, schedule="step", learning_rate=1e-3).resolved()
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 75], 0.5)
    for it in range(100):
        assert learning_rate_at(c, it, 1e-3) == pytest.approx(opt.param_groups[0]["lr"]), it
        opt.step()
        sched.step()
    assert [learning_rate_at(c, it, 1e-3) for it in (0, 49, 50, 74, 75, 99)] == \
        [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]


def test_the_cosine_schedule_at_a_few_iterations():
    c = Config(iters=1000, schedule="cosine").resolved()
    assert learning_rate_at(c, 0, 4e-4) == 4e-4
    assert learning_rate_at(c, 500, 4e-4) == pytest.approx(2e-4)
    assert learning_rate_at(c, 250, 4e-4) == pytest.approx(2e-4 * (1 + 2**-0.5))
    assert 0 < learning_rate_at(c, 999, 4e-4) < 1e-8


def test_the_log_records_the_learning_rate_of_each_logged_iteration(tmp_path, tiny_sets):
    train(tiny_config(tmp_path, tiny_sets, schedule="cosine", learning_rate=1e-3))
    c = Config(iters=8, schedule="cosine").resolved()
    rows = (tmp_path / "run" / "losses.csv").read_text().splitlines()
    col = rows[0].split(",").index("learning_rate")
    logged = [float(r.split(",")[col]) for r in rows[1:]]
    assert logged == pytest.approx([learning_rate_at(c, it - 1, 1e-3) for it in (2, 4, 6, 8)])


# ---- the EMA of the generator's weights -----------------------------------------------------

def test_the_ema_is_what_is_saved_and_evaluated(tmp_path, tiny_sets, monkeypatch, capsys):
    seen = {}
    original = train_mod.update_ema

    def spy(ema, g, decay, updates):
        original(ema, g, decay, updates)
        seen["ema"] = {k: v.clone() for k, v in ema.state_dict().items()}
        seen["g"] = {k: v.clone() for k, v in g.state_dict().items()}
        seen.setdefault("updates", []).append(updates)

    monkeypatch.setattr(train_mod, "update_ema", spy)
    r = train(tiny_config(tmp_path, tiny_sets, ema_decay=0.9, learning_rate=1e-2))
    saved = torch.load(tmp_path / "run" / "generator.pt", weights_only=True)
    assert seen["updates"] == list(range(8))
    assert all(torch.equal(saved[k], seen["ema"][k]) for k in saved)
    assert any(not torch.equal(saved[k], seen["g"][k]) for k in saved)  # not the live weights
    # the evaluated numbers are the saved generator's
    assert evaluate_main(["--model", str(tmp_path / "run"), "--data", tiny_sets[1],
                          "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr_y"] == pytest.approx(r["psnr_y"], abs=1e-9)


def test_the_ema_warms_up_then_holds_its_decay():
    ema, g = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        g.weight.fill_(1.0)
    train_mod.update_ema(ema, g, 0.999, 0)  # d = 1/10: mostly the live weights
    assert ema.weight.item() == pytest.approx(0.9)
    train_mod.update_ema(ema, g, 0.5, 10**6)  # d = 0.5 once the warm-up is past it
    assert ema.weight.item() == pytest.approx(0.95)


def test_a_stop_and_resume_gives_the_uninterrupted_ema(tmp_path, tiny_sets, monkeypatch):
    kw = dict(ema_decay=0.9, learning_rate=1e-2, schedule="cosine")
    whole = train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "whole"), **kw))
    cfg = tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "cut"), **kw)
    interrupt_at(monkeypatch, 5)
    with pytest.raises(Interrupted, match="iteration 5"):
        train(cfg)
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert state["iter"] == 5 and state["g_ema"] is not None
    monkeypatch.undo()
    assert train(cfg)["resumed_from_iter"] == 5
    a = torch.load(tmp_path / "whole" / "generator.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "generator.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["psnr_y"] == \
        whole["psnr_y"]


# ---- bf16 autocast ---------------------------------------------------------------------------

def test_bf16_falls_back_to_float32_where_unsupported(tmp_path, tiny_sets, monkeypatch):
    monkeypatch.setattr(train_mod, "bf16_supported", lambda _dev: False)
    r = train(tiny_config(tmp_path, tiny_sets, iters=2, precision="auto"))
    assert r["precision"] == "fp32" and r["config"]["precision"] == "auto"
    out = tmp_path / "asked"
    with pytest.raises(ValueError, match="precision 'bf16': this CPU has neither AVX512-BF16 "
                                         "nor AMX; use precision auto"):
        train(tiny_config(tmp_path, tiny_sets, iters=2, precision="bf16", out=str(out)))
    assert not out.exists()  # refused before anything was written


def test_bf16_where_supported_and_fp32_on_request(tmp_path, tiny_sets, monkeypatch):
    monkeypatch.setattr(train_mod, "bf16_supported", lambda _dev: True)
    r = train(tiny_config(tmp_path, tiny_sets, iters=2, out=str(tmp_path / "a")))
    assert r["precision"] == "bf16"
    r = train(tiny_config(tmp_path, tiny_sets, iters=2, precision="fp32",
                          out=str(tmp_path / "b")))
    assert r["precision"] == "fp32"
