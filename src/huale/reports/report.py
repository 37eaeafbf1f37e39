"""``huale report``: learning-curve PNG and markdown tables from one or more run folders."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

from huale.errors import ConfigError
from huale.io import atomic_write_bytes, atomic_write_text
from huale.reports.machines import describe, mixed_seeds
from huale.reports.records import load_records
from huale.reports.tables import METRIC_NAMES, learning_curves, splits_in, summary_markdown

log = logging.getLogger(__name__)


def plot_learning_curves(curves: dict[str, dict[int, dict]], title: str, x: str = "num_labeled") -> bytes:
    """PNG bytes: mean over seeds against labeled images (``x="num_boxes"``: labeled boxes),
    ± std band, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for strategy in sorted(curves, key=lambda s: (s != "random", s)):
        curve = curves[strategy]
        cycles = sorted(curve)
        xs = [curve[c][x] for c in cycles]
        mean = [100 * curve[c]["mean"] for c in cycles]
        std = [100 * curve[c]["std"] for c in cycles]
        style = {"linestyle": "--", "color": "gray"} if strategy == "random" else {}
        (line,) = ax.plot(xs, mean, marker="o", label=strategy, **style)
        ax.fill_between(xs, [m - s for m, s in zip(mean, std, strict=True)],
                        [m + s for m, s in zip(mean, std, strict=True)], alpha=0.12,
                        color=line.get_color())
    ax.set_xlabel("labeled images" if x == "num_labeled" else "labeled boxes (ground truth)")
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path | None = None, *, metric: str = "voc",
    baseline: str = "random", choose: Sequence[Sequence[str]] = (),
) -> dict[str, Path]:
    """Write ``report.md`` and the learning curves (default: into the first run folder):
    ``learning_curve.png`` (test split, against labeled images), ``learning_curve_boxes.png``
    (test split, against labeled boxes, when the records count them) and
    ``learning_curve_validation.png`` (when the run holds a validation split out).
    ``choose``: groups of strategy variants chosen on validation (see ``summary_markdown``)."""
    records = load_records(run_dirs)
    held = sorted({r.strategy for r in records})
    unknown = [name for group in choose for name in group if name not in held]
    if unknown:
        raise ConfigError(f"--choose names {', '.join(map(repr, unknown))}, which no record holds; "
                          f"the records hold {', '.join(held)}")
    for seed, machines in mixed_seeds(records).items():
        log.warning("seed %d: records from %d machines (%s); its paired gains compare machines "
                    "too (report.md, Machines)", seed, len(machines),
                    "; ".join(describe(m) for m in machines))
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dirs[0])
    name = METRIC_NAMES[metric]
    paths: dict[str, Path] = {}
    figures = []
    for split in splits_in(records, metric):
        curves = learning_curves(records, metric, split=split)
        suffix = "" if split == "test" else f"_{split}"
        paths[f"png{suffix}"] = atomic_write_bytes(
            out_dir / f"learning_curve{suffix}.png",
            plot_learning_curves(curves, f"{name} (%), {split} split"))
        figures.append(f"![learning curve, {split} split]({paths[f'png{suffix}'].name})")
        if split == "test" and all(r.num_boxes is not None for r in records):
            paths["png_boxes"] = atomic_write_bytes(
                out_dir / "learning_curve_boxes.png",
                plot_learning_curves(curves, f"{name} (%), test split", x="num_boxes"))
            figures.append(f"![learning curve against labeled boxes, test split]({paths['png_boxes'].name})")
    markdown = summary_markdown(records, metric, baseline, choose=choose)
    paths["markdown"] = atomic_write_text(
        out_dir / "report.md", "# Active-learning report\n\n" + markdown + "\n\n" + "\n\n".join(figures) + "\n")
    paths.setdefault("png", paths.get("png_validation"))
    return paths
