import pytest

from huale.errors import ConfigError, DataError
from huale.reports import CycleRecord, learning_curves, load_records, summary_markdown, write_report
from huale.reports.stats import image_gains
from huale.reports.tables import area_under_curve

# mAP per (strategy, seed) over cycles 0..2 at 100, 200, 300 labeled images
MAPS = {
    ("random", 0): [0.30, 0.40, 0.50],
    ("random", 1): [0.30, 0.42, 0.52],
    ("huale", 0): [0.30, 0.46, 0.55],
    ("huale", 1): [0.30, 0.48, 0.59],
}


def _write_run(run_dir):
    for (strategy, seed), maps in MAPS.items():
        for cycle, value in enumerate(maps):
            CycleRecord(
                strategy=strategy, seed=seed, cycle=cycle, num_labeled=100 * (cycle + 1),
                metrics={"voc": {"mAP": value, "per_class": {"a": value, "b": value / 2}}},
                train_seconds=10.0 * (cycle + 1) + seed, score_seconds=3.0 if cycle < 2 else 0.0,
                selected=[{"image_id": f"x{cycle}", "score": 1.0, "stage": ""}] if cycle < 2 else [],
            ).write(run_dir)


def test_curves_gain_and_area(tmp_path):
    _write_run(tmp_path)
    records = load_records([tmp_path])
    assert len(records) == 12
    curves = learning_curves(records)
    assert curves["random"][1]["mean"] == pytest.approx(0.41)  # (0.40 + 0.42) / 2
    assert curves["random"][1]["std"] == pytest.approx(0.01)
    # random mean curve 0.30, 0.41, 0.51 over x = 100..300:
    # trapezoids (0.355 + 0.46) * 100 / 200 = 0.4075
    assert area_under_curve(curves["random"]) == pytest.approx(0.4075)
    # paired by seed: seed 0 (0.06 + 0.05) / 2, seed 1 (0.06 + 0.07) / 2
    assert image_gains(records, "huale", "random") == pytest.approx({0: 0.055, 1: 0.065})
    # their mean, the report's gain column: +0.06 (= 0.47 - 0.41 and 0.57 - 0.51 on the means)
    assert "| huale | 30.00 ± 0.00 | 47.00 ± 1.00 | 57.00 ± 2.00 | +6.00 | +5.50, +6.50 |" in summary_markdown(records)


def test_gain_column_pairs_seeds_when_the_baseline_ran_more(tmp_path):
    """A strategy run on seeds 0-1 against a baseline run on seeds 0-2 is compared with the
    baseline of seeds 0-1 only: a far-off baseline seed 2 must not move its gain."""
    _write_run(tmp_path)
    for cycle, value in enumerate([0.30, 0.90, 0.90]):
        CycleRecord("random", 2, cycle, 100 * (cycle + 1),
                    {"voc": {"mAP": value, "per_class": {}}}).write(tmp_path)
    records = load_records([tmp_path])
    # unpaired, the means over seeds would give 0.47 - 0.5733 and 0.57 - 0.64: about -0.087
    row = next(line for line in summary_markdown(records).splitlines() if line.startswith("| huale |"))
    assert "| +6.00 | +5.50, +6.50 |" in row and row.endswith("| 2 |")


def test_markdown_and_png(tmp_path):
    _write_run(tmp_path)
    md = summary_markdown(load_records([tmp_path]))
    assert "| huale | 30.00 ± 0.00 | 47.00 ± 1.00 | 57.00 ± 2.00 | +6.00 | +5.50, +6.50 |" in md
    assert "| random | 30.00 ± 0.00 | 41.00 ± 1.00 | 51.00 ± 1.00 | — | — |" in md
    # training of cycles 1, 2 over seeds 0, 1: (20 + 30 + 21 + 31) / 4; scoring at cycles 0, 1
    assert "| huale | 25.5 | 3.0 |" in md
    assert "| random |" in md and "Per-class AP" in md
    assert "| b | 28.50 | 25.50 |" in md  # last cycle: huale (0.55+0.59)/4, random (0.50+0.52)/4
    paths = write_report([tmp_path])
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "learning_curve.png" in paths["markdown"].read_text()


def test_several_run_folders_are_pooled(tmp_path):
    _write_run(tmp_path / "a")
    CycleRecord("entropy", 0, 0, 100, {"voc": {"mAP": 0.3, "per_class": {}}}).write(tmp_path / "b")
    assert {r.strategy for r in load_records([tmp_path / "a", tmp_path / "b"])} == {"random", "huale", "entropy"}


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_records([tmp_path / "nope"])
    with pytest.raises(DataError, match="no cycle records"):
        load_records([tmp_path])
    bad = tmp_path / "x" / "seed0" / "cycle0"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{broken")
    with pytest.raises(DataError, match="record.json"):
        load_records([tmp_path])


def test_choose_naming_a_strategy_no_record_holds_is_refused(tmp_path, capsys):
    """A misspelt variant would otherwise give a report that silently makes no choice."""
    from huale.cli import main

    _write_run(tmp_path)
    with pytest.raises(ConfigError, match="'huale-mu9', which no record holds; the records hold huale, random"):
        write_report([tmp_path], choose=[["huale", "huale-mu9"]])
    assert not (tmp_path / "report.md").exists()
    assert main(["report", str(tmp_path), "--choose", "huale", "huale-mu9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "huale-mu9" in err
