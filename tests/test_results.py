"""The result folder: its files read back, each damage refused with a message naming the
file, and a report page that never outlives the results it showed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srlib import ablate, runs
from srlib import results as rs
from srlib.report import main as report_main


def _folder(tmp_path: Path, n: int = 8) -> Path:
    """A result folder of ``n`` done runs of two variants (results, per-image table and a
    provenance that records the results' hash), as the runner writes them."""
    rng = np.random.default_rng(0)
    rows, per = [], []
    for i in range(n):
        v, seed = ("a", "b")[i % 2], i // 2
        rows.append({c: "" for c in rs.columns()} | {
            "variant": v, "kind": "trained", "seed": seed, "dataset": "S", "status": "done",
            "psnr_y": 30 + i, "lpips_kind": "stlpips-alex", "iters": 10, "iters_total": 10})
        per += [{"variant": v, "seed": seed, "dataset": "S", "image": f"{k}",
                 "psnr_y": 30 + rng.normal()} for k in range(4)]
    table = pd.DataFrame(rows, columns=rs.columns())
    table.to_csv(tmp_path / rs.RESULTS, index=False)
    pd.DataFrame(per).to_csv(tmp_path / rs.PER_IMAGE, index=False)
    runs.write_json(tmp_path / rs.PROVENANCE, {
        "commit": "abc", "results_sha256": runs.file_hash(tmp_path / rs.RESULTS),
        "results_rows": len(table), "per_image_sha256": runs.file_hash(tmp_path / rs.PER_IMAGE),
        "per_image_rows": len(per)})
    return tmp_path


def test_a_whole_folder_reads_back(tmp_path, capsys):
    folder = _folder(tmp_path)
    assert len(rs.read_results(folder)) == 8
    assert report_main([str(folder), "--columns", "psnr_y@S"]) == 0
    assert "| `a` |" in capsys.readouterr().out


def test_a_truncated_results_csv_is_refused_naming_it(tmp_path, capsys):
    folder = _folder(tmp_path)
    text = (folder / rs.RESULTS).read_text()
    (folder / rs.RESULTS).write_text(text[: len(text) // 3])  # cut mid-row
    assert report_main([str(folder), "--columns", "psnr_y@S"]) == 2
    err = capsys.readouterr().err
    assert str(folder / rs.RESULTS) in err and "cut short or rewritten" in err
    assert "8 written" in err


def test_a_truncated_per_image_csv_is_refused_naming_it(tmp_path, capsys):
    """Cut after whole rows, it still parses: only its recorded hash tells (a mean would
    silently become a few images' mean)."""
    folder = _folder(tmp_path)
    lines = (folder / rs.PER_IMAGE).read_text().splitlines(keepends=True)
    (folder / rs.PER_IMAGE).write_text("".join(lines[:5]))
    assert report_main([str(folder), "--columns", "psnr_y@S"]) == 2
    err = capsys.readouterr().err
    assert str(folder / rs.PER_IMAGE) in err and "cut short or rewritten" in err
    assert "4 rows here, 32 written" in err


def test_provenance_records_both_tables(tmp_path):
    folder = _folder(tmp_path)
    prov = rs.provenance(folder, {}, folder / "g.yaml", rs.read_results(folder))
    assert prov["per_image_sha256"] == runs.file_hash(folder / rs.PER_IMAGE)
    assert prov["per_image_rows"] == 32 and prov["results_rows"] == 8


def test_provenance_keeps_the_wall_time_of_every_invocation(tmp_path):
    """A rebuild that skips the finished runs keeps the time the first invocation spent
    training them; the page sums them."""
    from srlib import report as rp

    folder = _folder(tmp_path)
    table = rs.read_results(folder)
    runs.write_json(folder / rs.PROVENANCE,
                    rs.provenance(folder, {"runs": 7200.04}, folder / "g.yaml", table))
    prov = rs.provenance(folder, {"runs": 0.3}, folder / "g.yaml", table)
    assert [i["runs_seconds"] for i in prov["invocations"]] == [7200.0, 0.3]
    (line,) = rp.invocation_lines(prov["invocations"])
    assert "over the 2 invocation(s) of the runner that wrote this folder: 120 min" in line


def test_a_rebuild_that_rewrites_its_own_tables_is_from_a_clean_tree(tmp_path, monkeypatch):
    """The runner rewrites the committed study's tables in its folder before it records
    the commit: those changes are not "uncommitted changes"; a change elsewhere is."""
    import subprocess

    repo = tmp_path / "repo"
    (repo / "reports").mkdir(parents=True)
    folder = _folder(repo / "reports")
    (repo / "code.py").write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    monkeypatch.setattr(rs, "PROJECT", repo)
    (folder / rs.RESULTS).write_text((folder / rs.RESULTS).read_text() + "\n")
    prov = rs.provenance(folder, {}, repo / "g.yaml", pd.DataFrame(columns=rs.columns()))
    assert "uncommitted" not in prov["commit"] and len(prov["commit"]) >= 7
    (repo / "code.py").write_text("x = 2\n")
    prov = rs.provenance(folder, {}, repo / "g.yaml", pd.DataFrame(columns=rs.columns()))
    assert prov["commit"].endswith("(with uncommitted changes)")


def test_a_results_csv_without_its_status_column_is_refused(tmp_path, capsys):
    folder = _folder(tmp_path)
    pd.read_csv(folder / rs.RESULTS).drop(columns="status").to_csv(folder / rs.RESULTS,
                                                                   index=False)
    assert report_main([str(folder), "--columns", "psnr_y@S"]) == 2
    err = capsys.readouterr().err
    assert "results.csv: lacks column(s) status" in err and "Traceback" not in err


def test_a_provenance_that_holds_a_list_is_refused(tmp_path, capsys):
    folder = _folder(tmp_path)
    (folder / rs.PROVENANCE).write_text("[1, 2]")
    assert report_main([str(folder), "--columns", "psnr_y@S"]) == 2
    err = capsys.readouterr().err
    assert "provenance.json: expected a JSON object, got list" in err


def test_a_damaged_per_image_csv_is_refused_naming_it(tmp_path, capsys):
    folder = _folder(tmp_path)
    prov = rs.read_provenance(folder)  # a folder from before its hash was recorded
    runs.write_json(folder / rs.PROVENANCE, {k: v for k, v in prov.items()
                                             if not k.startswith("per_image")})
    (folder / rs.PER_IMAGE).write_bytes(b'variant,seed\n"a,0\n\xff\xfe')
    assert report_main([str(folder), "--columns", "psnr_y@S"]) == 2
    err = capsys.readouterr().err
    assert str(folder / rs.PER_IMAGE) in err and "not a readable CSV" in err
    (folder / rs.PER_IMAGE).write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="per_image.csv: lacks column"):
        rs.read_per_image(folder)
    (folder / rs.MANIFOLD).write_text("{trunc")
    with pytest.raises(ValueError, match="manifold.json: not valid JSON"):
        rs.read_manifold(folder)


def test_the_old_page_is_marked_before_the_results_change(tmp_path, monkeypatch):
    """A runner killed (kill -9) between writing results.csv and the new page leaves a page
    that says so, never the old page beside new results."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("<html>the old report</html>")
    grid = {"name": "g", "seeds": [0], "defaults": {}, "variants": {}, "notebook_params": {}}
    plan = ablate.Plan(config=tmp_path / "g.yaml", grid=grid, names=[], seeds=[0],
                       forced=set(), out=out, jobs=1)

    def killed(*_a, **_k):
        page = (out / "index.html").read_text()
        assert "the old report" not in page and "is being rebuilt" in page
        raise SystemExit(137)  # what the runner's death leaves: nothing after this point

    monkeypatch.setattr(rs, "write", killed)
    with pytest.raises(SystemExit):
        ablate.build_report(plan, {}, ablate.Stop(), 0.0)
    assert "is being rebuilt" in (out / "index.html").read_text()


def test_a_second_grid_into_the_same_folder_is_warned_about(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    runs.write_json(out / rs.PROVENANCE, {"grid": "configs/first.yaml"})
    plan = ablate.Plan(config=tmp_path / "second.yaml", grid={}, names=[], seeds=[0],
                       forced=set(), out=out, jobs=1)
    assert ablate._other_grid(plan) == "configs/first.yaml"
    runs.write_json(out / rs.PROVENANCE, {"grid": rs.project_path(plan.config)})
    assert ablate._other_grid(plan) == ""
    json.dumps(rs.read_provenance(out))


def test_a_corrupt_metrics_json_is_an_unfinished_run(tmp_path):
    """Not "skipped" by the runner and "failed" on the page: resumed and evaluated again."""
    run = tmp_path / "run"
    run.mkdir()
    runs.write_json(run / runs.CONFIG, {"loss": "pinv", "upsampler": ""})
    (run / runs.METRICS).write_text('{"psnr_y": 3')  # cut short
    assert not runs.is_finished(run)
    assert rs.run_status(run) == ("interrupted", "resumable: run the runner again")
    runs.write_json(run / runs.METRICS, {"psnr_y": 30.0})
    assert runs.is_finished(run) and rs.run_status(run)[0] == "done"


def test_a_config_edited_after_the_run_finished_is_stale(tmp_path):
    """The weights and numbers are the recorded config's: an edit of config.json is caught
    (the runner then trains the run again; the page leaves it out meanwhile)."""
    run = tmp_path / "run"
    run.mkdir()
    config = {"loss": "pinv", "upsampler": "", "iters": 40, "out": str(run)}
    runs.write_json(run / runs.CONFIG, config)
    runs.write_json(run / runs.METRICS, {"psnr_y": 30.0, "config": config})
    assert runs.is_stale(run) is None and rs.run_status(run) == ("done", "")
    runs.write_json(run / runs.CONFIG, {**config, "out": "/moved"})  # where: same run
    assert runs.is_stale(run) is None
    runs.write_json(run / runs.CONFIG, {**config, "iters": 1000, "loss": "down"})
    status, why = rs.run_status(run)
    assert status == "stale" and "config.json was edited after it finished" in why
    assert "iters: 40 -> 1000" in why and "loss: 'pinv' -> 'down'" in why


def test_a_full_disk_while_the_page_is_written_leaves_no_page(tmp_path, monkeypatch, capsys):
    """The failure page itself cannot be written: a message, exit 1, and no old page left
    as if it were current (the write is atomic: whole, or not at all)."""
    import errno

    from srlib import notebooks

    (tmp_path / "index.html").write_text("<html>an earlier report</html>")

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(notebooks.runs, "write_text", full)
    assert notebooks._report_failed(tmp_path, "04_report.py failed: boom") == 1
    err = capsys.readouterr().err
    assert "the report could not be built: 04_report.py failed: boom" in err
    assert "could not be written (No space left on device) and was removed" in err
    assert "Traceback" not in err and not (tmp_path / "index.html").exists()
