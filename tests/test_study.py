"""The committed study's verdicts, re-derived from its ``per_image.csv`` alone, and every
number the README quotes from it."""

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


def test_six_seeds_on_both_sides_of_every_primary_and_intervals_include_retraining(verdicts):
    from srlib.grid import load_grid

    g = load_grid(ROOT / "configs" / "study.yaml")
    primaries = [h.id for h in g["hypotheses"] if h.primary]
    assert len(primaries) == 3
    pooled = verdicts[verdicts.dataset == "pooled"].set_index("id")
    assert (pooled.loc[primaries].n_seeds >= 6).all()
    h2 = verdicts.set_index(["id", "dataset"]).loc[("H2", "BSD68")]
    seeds = [float(x) for x in h2.seed_means.split(" / ")]
    # six seeds, which disagree by over 2 dB: the interval, seeds resampled, is as wide
    assert len(seeds) == 6 and h2.low < sum(seeds) / 6 < h2.high
    assert max(seeds) - min(seeds) > 2 and h2.high - h2.low > 2


def test_every_interval_of_the_readme_is_in_the_verdict_table(verdicts):
    cells = {rp.cell_text(r).removeprefix("share ") for _, r in verdicts.iterrows()}
    readme = (ROOT / "README.md").read_text()
    quoted = (INTERVAL.findall(_section(readme, "**The answer**,", "In short:"))
              + INTERVAL.findall(_section(readme, "What the study finds.",
                                          "Regenerate the first table with")))
    assert len(quoted) >= 12  # the regular expression still finds them
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
    and each verdict word agrees with the verdict it paraphrases."""
    from srlib import results as rs
    from srlib.grid import load_grid
    from srlib.models import generator_size

    text = _opening()
    pooled = verdicts[verdicts.dataset == "pooled"].set_index("id")
    h2, h3, h6 = pooled.loc["H2"], pooled.loc["H3"], pooled.loc["H6-drift"]
    res = rs.read_results(STUDY)
    set5 = res[(res.dataset == "Set5") & (res.status == "done")]
    mean = set5.groupby("variant").psnr_y.apply(lambda x: x.astype(float).mean())
    spec = load_grid(ROOT / "configs" / "study.yaml")
    d = spec["defaults"]
    params = generator_size(d["preset"], d["scale"],
                            spec["variants"]["pixel/nearest"]["upsampler"])["params"]
    said = {  # what the paragraph says -> the study's own figure, formatted as said
        "scored {} dB PSNR-Y below the pixel-trained": f"{-h2['mean']:.2f}",
        "(95% interval {} to": f"{h2.low:.2f}", "to {}, ": f"{h2.high:.2f}",
        ", {} seeds each)": f"{h2.n_seeds:.0f}",
        "still scored {} dB below": f"{-h3['mean']:.2f}",
        "lost {} dB": f"{-h6['mean']:.2f}",
        "a {} M-parameter": f"{params / 1e6:.2f}",
        "at {} dB on Set5 x4": f"{mean['pixel/nearest']:.2f}",
        "where SRCNN reports {}.": "30.48",  # Dong et al., Set5 x4 (published)
    }
    for phrase, value in said.items():
        assert phrase.format(value) in text, (phrase, value)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    known = {*said.values(), "4", "5", "95"}  # Set5 x4, a 95% interval
    assert not [n for n in numbers if n not in known], "a number no test checks"
    # "no": H2 supported, H3 contradicted; "stopped there": the third primary not reached;
    # "fell back to D^+ LR": the fine-tune within 0.1 dB of pinv on Set5
    assert h2.adjusted == "supported" and h3.adjusted == "contradicted"
    assert pooled.loc["H3-upsampler"].adjusted == "not reached"
    assert text.startswith(f"{OPENING}: no, not as a loss on its own.")
    assert abs(mean["ft-pixel/down"] - mean["pinv"]) < 0.1


def test_the_answer_of_the_grid_quotes_only_checked_numbers():
    """The study grid's `answer:` fills its numbers from the verdicts; the two it writes
    itself are the published SRCNN figure and the generator's size."""
    from srlib.grid import answer_fields, load_grid
    from srlib.models import generator_size

    g = load_grid(ROOT / "configs" / "study.yaml")
    text = g["answer"]
    for written, _, _ in answer_fields(text):
        text = text.replace(written, "")
    numbers = set(re.findall(r"\d+(?:\.\d+)?", text))
    size = f"{generator_size('study')['params'] / 1e6:.2f}"
    assert numbers <= {"30.48", size, "5", "4"}, numbers


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


def test_every_per_run_range_the_readme_findings_quote():
    """The findings' numbers that are not intervals: ranges over the runs of a variant on
    Set5 (raw LR-PSNR, the share of values clipped, PSNR-Y), from the committed
    ``results.csv``, and the sum of the runs' training times."""
    import json

    from srlib import results as rs

    res = rs.read_results(STUDY)
    set5 = res[(res.dataset == "Set5") & (res.status == "done")]

    def span(variant: str, col: str, fmt: str, scale: float = 1.0) -> tuple[str, str]:
        x = set5[set5.variant == variant][col].astype(float) * scale
        return fmt.format(x.min()), fmt.format(x.max())

    text = " ".join(_section((ROOT / "README.md").read_text(), "## The study",
                             "Regenerate the first table with").split())
    said = [
        "Six seeds agree within 0.09 dB on Set5 ({} to {})".format(
            *span("pixel/nearest", "psnr_y", "{:.2f}")),
        "LR-PSNR before saving {} to {} dB on Set5".format(
            *span("down/pixelshuffle", "lr_psnr_raw", "{:.1f}")),
        "but {} to {}% of its values leave [0, 1]".format(
            *span("down/pixelshuffle", "clipped", "{:.0f}", 100)),
        "Their raw LR-PSNR on Set5 ends between {} and {} dB (pixel shuffle)".format(
            *span("down/pixelshuffle", "lr_psnr_raw", "{:.1f}")),
        "and {} and {} dB (nearest)".format(*span("down/nearest", "lr_psnr_raw", "{:.1f}")),
        "The pixel network's own raw LR-PSNR is {} to {} dB".format(
            *span("pixel/nearest", "lr_psnr_raw", "{:.1f}")),
    ]
    ft, pinv = (set5[set5.variant == v].psnr_y.astype(float).mean()
                for v in ("ft-pixel/down", "pinv"))
    said.append(f"({ft:.2f} dB on Set5 against {pinv:.2f})")
    p = set5[set5.variant == "pixel/nearest"].psnr_y.astype(float)
    assert p.max() - p.min() <= 0.09
    prov = json.loads((STUDY / "provenance.json").read_text())
    said.append(f"`train_seconds_total`: {prov['train_seconds_total'] / 60:.0f} min")
    for phrase in said:
        assert phrase in text, phrase
