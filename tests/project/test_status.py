"""huale status: per-round counts, and the fit from the third round with a val mAP on."""

import json

from huale.cli import main
from huale.io import atomic_write_json
from huale.project.state import ROUND_RECORD
from huale.project.status import project_status
from tests.project.conftest import fake_round


def _rounds(project, maps, sizes):
    for number, (value, size) in enumerate(zip(maps, sizes, strict=True), start=1):
        record = fake_round(project, number, [f"img{number}.png"])
        record.update(labeled_images=size, val={"metric": "voc", "mAP": value})
        atomic_write_json(project.round_dir(number) / ROUND_RECORD, record)


def test_status_fits_from_the_third_round_and_draws_the_curve(project, capsys):
    _rounds(project, [1 - 0.8 * (n / 10) ** -0.5 for n in (10, 20)], [10, 20])
    status = project_status(project)
    assert status.fit is None and "starts at 3" in status.fit_note
    _rounds(project, [1 - 0.8 * (n / 10) ** -0.5 for n in (10, 20, 40)], [10, 20, 40])
    status = project_status(project)
    assert status.fit is not None and status.fit.trustworthy
    assert [r.outstanding for r in status.rows] == [1, 1, 1]
    assert main(["status", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "expected val mAP gain" in out and "NOT trustworthy" not in out
    assert (project.root / "learning_curve.png").stat().st_size > 10_000
    assert main(["status", str(project.root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fit"]["trustworthy"] and data["fit"]["n_next"] == 41  # last round sent 1 image


def test_status_says_plainly_when_the_fit_is_not_trustworthy(project, capsys):
    _rounds(project, [0.30, 0.28, 0.31], [10, 20, 30])
    assert main(["status", str(project.root)]) == 0
    assert "The fit is NOT trustworthy" in capsys.readouterr().out


def test_unfinished_round_with_other_options_is_refused(project, capsys):
    from huale.project.rounds import RoundOptions

    rdir = project.round_dir(1)
    atomic_write_json(rdir / "request.json", RoundOptions(budget=3).identity())
    assert main(["round", str(project.root), "--budget", "5"]) == 2
    err = capsys.readouterr().err
    assert "round 1 is unfinished and was started with budget=3 (now 5)" in err
    assert main(["status", str(project.root)]) == 0
    assert "round 1 is unfinished" in capsys.readouterr().out


def test_learning_curve_draws_a_zero_width_band_that_rounding_inverted(project, tmp_path):
    """An exact fit's 80% band has zero width; rounding can put the point estimate a hair
    outside it (CI saw gain - gain_low = -5.6e-15), which matplotlib's errorbar refuses."""
    import dataclasses

    from huale.project.status import write_learning_curve

    _rounds(project, [1 - 0.8 * (n / 10) ** -0.5 for n in (10, 20, 40)], [10, 20, 40])
    status = project_status(project)
    fit = status.fit
    inverted = dataclasses.replace(fit, gain_low=fit.gain + 5.6e-15, gain_high=fit.gain - 5.6e-15)
    path = write_learning_curve(project, dataclasses.replace(status, fit=inverted), tmp_path / "curve.png")
    assert path.stat().st_size > 10_000
