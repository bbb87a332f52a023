"""The committed study's verdicts, re-derived from its ``per_image.csv`` alone, and every
interval the README quotes from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from srlib import report as rp

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "reports" / "study"
INTERVAL = re.compile(r"-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]")


@pytest.fixture(scope="module")
def verdicts():
    if not (STUDY / "per_image.csv").is_file():
        pytest.skip("no committed study in reports/study")
    return rp.verdicts(STUDY, ROOT / "configs" / "study.yaml")


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_intervals_include_retraining_and_every_is_tested_on_every_image(verdicts):
    v = verdicts.set_index(["id", "dataset"])
    h3 = v.loc[("H3", "BSD68")]
    seeds = [float(x) for x in h3.seed_means.split(" / ")]
    print(f"H3 on BSD68: {h3['mean']:.2f} [{h3.low:.2f}, {h3.high:.2f}], per seed "
          f"{' / '.join(f'{s:.2f}' for s in seeds)}")
    assert h3.n_seeds == 3 and h3.low < min(seeds) and h3.high > max(seeds)
    every = v.loc[("H5a-every", "pooled")]
    assert every.every and every.verdict == "supported" and every.n_images == 19
    assert "all 57 meet it" in every.note and "Set14/ppt3" in every.note
    # three runs on both sides of every hypothesis of the second edition
    assert (verdicts[verdicts.dataset == "pooled"].n_seeds == 3).all()


def test_every_interval_of_the_readme_is_in_the_verdict_table(verdicts):
    cells = {rp.cell_text(r).removeprefix("share ") for _, r in verdicts.iterrows()}
    readme = (ROOT / "README.md").read_text()
    quoted = (INTERVAL.findall(_section(readme, "**The answer**,", "In short:"))
              + INTERVAL.findall(_section(readme, "What the study finds.",
                                          "Regenerate the first table with")))
    assert len(quoted) >= 25  # the regular expression still finds them
    missing = [q for q in quoted if q not in cells]
    assert not missing, f"README intervals not in the study's verdict table: {missing}"


OPENING = "**The answer so far"


def _opening() -> str:
    """The README's opening answer: its first paragraph that starts with ``OPENING``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(OPENING)
    return " ".join(text[start:text.index("\n\n", start)].split())


def test_the_readme_opens_with_a_short_plain_answer():
    text = _opening()
    assert text.index(OPENING) < (ROOT / "README.md").read_text().index("```")
    sentences = re.split(r"(?<=[.!?])\*{0,2} +(?=[A-Z*])", text)
    words = [len(s.split()) for s in sentences]
    print(f"{len(sentences)} sentences, {sum(words)} words, the longest {max(words)}")
    assert len(sentences) <= 5 and sum(words) <= 120 and max(words) <= 35


def test_every_number_and_verdict_word_of_the_opening_answer(verdicts):
    """Each number of the opening paragraph is one of the study's, as it is said there,
    and each verdict word agrees with the adjusted verdict it paraphrases."""
    from srlib import results as rs
    from srlib import stats
    from srlib.grid import load_grid
    from srlib.models import build_generator

    text = _opening()
    pooled = verdicts[verdicts.dataset == "pooled"].set_index("id")
    h2, h4 = pooled.loc["H2"], pooled.loc["H4"]
    results = rs.read_results(STUDY)
    pixel = results[(results.variant == "pixel/nearest") & (results.status == "done")]
    spec = load_grid(ROOT / "configs" / "study.yaml")
    d = spec["defaults"]
    params = sum(p.numel() for p in build_generator(
        d["preset"], d["scale"], spec["variants"]["pixel/nearest"]["upsampler"]).parameters())
    family = int(((~pooled.every.astype(bool)) & pooled.verdict.isin(stats.TESTED)).sum())
    assert stats.procedure(spec["hypotheses"]).startswith("Every hypothesis is in one family")
    said = {  # what the paragraph says -> the study's own figure, formatted as said
        "scored {} dB PSNR-Y below": f"{-h2['mean']:.2f}",
        "(95% interval {} to": f"{h2.low:.2f}", "to {}, ": f"{h2.high:.2f}",
        ", {} seeds)": f"{h2.n_seeds:.0f}", "over all {} of the study's tests": str(family),
        "(LPIPS {} against its start)": f"{h4['mean']:.3f}",
        "a {} M-parameter": f"{params / 1e6:.2f}",
        "trained for {} iterations": f"{pixel[pixel.dataset == 'Set5'].iters.iloc[0]:.0f}",
        "scores {} dB on Set5 x4": f"{pixel[pixel.dataset == 'Set5'].psnr_y.mean():.2f}",
        "where SRCNN reports {}.": "30.48",  # Dong et al. 2014, Set5 x4 (published)
    }
    for phrase, value in said.items():
        assert phrase.format(value) in text, (phrase, value)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    known = {*said.values(), "4", "5", "95"}  # Set5 x4, a 95% interval
    assert not [n for n in numbers if n not in known], "a number no test checks"
    # verdict words: "inconclusive" paraphrases H2 and H4 after adjustment, and the lead
    # "probably not" a negative H2 that is supported before adjustment only
    assert "that gap is inconclusive, and so is the adversarial fix" in text
    assert h2.adjusted == "inconclusive" and h4.adjusted == "inconclusive"
    assert text.startswith(f"{OPENING}: probably not, but the committed study cannot yet")
    assert h2["mean"] < 0 and h2.verdict == "supported"


def test_the_committed_verdicts_are_re_derived(verdicts):
    """``python -m srlib.report reports/study --verdicts configs/study.yaml`` gives the
    committed ``verdicts.csv``, its family, order and mixed-model columns included."""
    import pandas as pd

    from srlib import stats

    committed = pd.read_csv(STUDY / "verdicts.csv", keep_default_na=False,
                            na_values=[""])
    assert list(committed.columns) == stats.VERDICT_COLUMNS
    for c in ("id", "dataset", "verdict", "family", "adjusted", "verdict_mixed"):
        assert committed[c].fillna("").astype(str).tolist() == \
            verdicts[c].fillna("").astype(str).tolist(), c
    for c in ("mean", "low", "high", "p", "mean_mixed", "se_mixed", "df_mixed", "p_mixed"):
        pd.testing.assert_series_equal(committed[c].astype(float),
                                       verdicts[c].astype(float), rtol=1e-9, check_names=False)
