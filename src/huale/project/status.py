"""``huale status``: where a project stands, round by round, and its learning curve.

:func:`project_status` gathers, per round: the labeled images (and boxes) it trained on, its
validation mAP, how many images it selected, how many came back (they are in the labeled set
now) and how many are still outstanding; plus the unfinished round, if any, and from the third
round with a validation mAP on, the saturating fit of :mod:`huale.project.fit` with the expected
gain of a next round of the same size as the last. :func:`write_learning_curve` draws
``PROJECT/learning_curve.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from huale.project.fit import CurveFit, fit_learning_curve
from huale.project.state import Project

LEARNING_CURVE = "learning_curve.png"


@dataclass
class RoundRow:
    round: int
    labeled_images: int
    labeled_boxes: int
    val_map: float | None
    selected: int
    returned: int
    outstanding: int
    strategy: str


@dataclass
class ProjectStatus:
    rows: list[RoundRow]
    labeled_images: int
    labeled_boxes: int
    unfinished_round: int | None
    fit: CurveFit | None
    fit_note: str
    outstanding: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        fit = None
        if self.fit is not None:
            f = self.fit
            fit = {"b": f.b, "c": f.c, "r2": f.r2, "n_last": f.n_last, "n_next": f.n_next,
                   "gain": f.gain, "gain_low": f.gain_low, "gain_high": f.gain_high,
                   "trustworthy": f.trustworthy, "problems": f.problems}
        return {"rounds": [r.__dict__ for r in self.rows], "labeled_images": self.labeled_images,
                "labeled_boxes": self.labeled_boxes, "unfinished_round": self.unfinished_round,
                "outstanding": self.outstanding, "fit": fit, "fit_note": self.fit_note}

    def table(self) -> str:
        lines = [f"{'round':>5} {'labeled':>8} {'val mAP':>8} {'selected':>9} {'returned':>9} "
                 f"{'outstanding':>12}  strategy"]
        for r in self.rows:
            val = "-" if r.val_map is None else f"{100 * r.val_map:.1f}"
            lines.append(f"{r.round:>5} {r.labeled_images:>8} {val:>8} {r.selected:>9} "
                         f"{r.returned:>9} {r.outstanding:>12}  {r.strategy}")
        return "\n".join(lines)


def project_status(project: Project) -> ProjectStatus:
    labeled = project.labeled()
    paths = {im["file_name"] for im in labeled.images}
    rows, waiting = [], []
    for record in project.finished_rounds():
        back = [s for s in record["selected"] if s["path"] in paths]
        waiting += [s["file_name"] for s in record["selected"] if s["path"] not in paths]
        val = record.get("val") or {}
        rows.append(RoundRow(
            round=record["round"], labeled_images=record["labeled_images"],
            labeled_boxes=record["labeled_boxes"], val_map=val.get("mAP"),
            selected=len(record["selected"]), returned=len(back),
            outstanding=len(record["selected"]) - len(back),
            strategy=record["options"]["strategy"],
        ))
    current = project.current_round()
    unfinished = current if current is not None and project.round_record(current) is None else None
    with_map = [r for r in rows if r.val_map is not None]
    fit, note = None, ""
    if project.val is None:
        note = "no validation set (huale init --val): no mAP, no learning-curve fit"
    elif len(with_map) < 3:
        note = (f"{len(with_map)} rounds with a val mAP: the fit of how much more is worth "
                "labeling starts at 3")
    else:
        size = rows[-1].selected or rows[-1].returned
        fit = fit_learning_curve([r.labeled_images for r in with_map],
                                 [r.val_map for r in with_map], next_size=size)
        if fit is None:
            note = "the rounds trained on too few distinct labeled-set sizes to fit a curve"
        else:
            note = fit.statement()
    return ProjectStatus(rows=rows, labeled_images=len(labeled), labeled_boxes=labeled.num_boxes(),
                         unfinished_round=unfinished, fit=fit, fit_note=note, outstanding=waiting)


def write_learning_curve(project: Project, status: ProjectStatus, path: Path | None = None) -> Path | None:
    """Val mAP (%) against labeled images per round, with the fit and its 80% band; None when
    there is no validation mAP to draw."""
    points = [(r.labeled_images, r.val_map) for r in status.rows if r.val_map is not None]
    if not points:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from huale.io import atomic_write_bytes

    n, y = (np.asarray(v, np.float64) for v in zip(*points, strict=True))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(n, 100 * y, "o-", color="tab:blue", label="val mAP@0.5 per round")
    fit = status.fit
    if fit is not None:
        grid = np.linspace(max(1.0, n.min() * 0.9), fit.n_next, 100)
        low, high = fit.band(grid)
        ax.plot(grid, 100 * fit.predict(grid), "--", color="tab:orange",
                label=f"fit 1 - mAP = {fit.b:.2g} n^-{fit.c:.2g}" + ("" if fit.trustworthy else " (not trustworthy)"))
        ax.fill_between(grid, 100 * low, 100 * high, color="tab:orange", alpha=0.2, label="80% band")
        ax.errorbar([fit.n_next], [100 * (y[-1] + fit.gain)],
                    # The point estimate can sit a hair outside the sampled band (an exact fit's
                    # band has zero width and rounding inverts it); matplotlib refuses negative bars.
                    yerr=[[100 * max(0.0, fit.gain - fit.gain_low)], [100 * max(0.0, fit.gain_high - fit.gain)]],
                    fmt="s", color="tab:red", capsize=4, label="expected after the next round")
    ax.set_xlabel("labeled images")
    ax.set_ylabel("validation mAP@0.5 (%)")
    ax.set_title("huale project: learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path or project.root / LEARNING_CURVE, buffer.getvalue())
