"""``huale report``: learning-curve PNG and markdown tables from one or more run folders."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from huale.io import atomic_write_bytes, atomic_write_text
from huale.reports.records import load_records
from huale.reports.tables import learning_curves, summary_markdown


def plot_learning_curves(curves: dict[str, dict[int, dict]], title: str) -> bytes:
    """PNG bytes: mean over seeds against labeled images, ± std band, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for strategy in sorted(curves, key=lambda s: (s != "random", s)):
        curve = curves[strategy]
        cycles = sorted(curve)
        xs = [curve[c]["num_labeled"] for c in cycles]
        mean = [100 * curve[c]["mean"] for c in cycles]
        std = [100 * curve[c]["std"] for c in cycles]
        style = {"linestyle": "--", "color": "gray"} if strategy == "random" else {}
        (line,) = ax.plot(xs, mean, marker="o", label=strategy, **style)
        ax.fill_between(xs, [m - s for m, s in zip(mean, std, strict=True)],
                        [m + s for m, s in zip(mean, std, strict=True)], alpha=0.12,
                        color=line.get_color())
    ax.set_xlabel("labeled images")
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
    baseline: str = "random",
) -> dict[str, Path]:
    """Write ``report.md`` and ``learning_curve.png`` (default: into the first run folder)."""
    records = load_records(run_dirs)
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dirs[0])
    title = {"voc": "VOC mAP@0.5 (%)", "voc07": "VOC07 mAP@0.5 (%)", "coco": "COCO AP (%)"}[metric]
    png = atomic_write_bytes(out_dir / "learning_curve.png", plot_learning_curves(learning_curves(records, metric), title))
    markdown = summary_markdown(records, metric, baseline)
    md = atomic_write_text(out_dir / "report.md", f"# Active-learning report\n\n{markdown}\n\n![learning curve]({png.name})\n")
    return {"markdown": md, "png": png}
