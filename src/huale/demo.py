"""``huale demo``: the whole active-learning loop on the synthetic dataset, sized for 2 CPU cores.

Generates the synthetic set, trains the small detector on a seeded initial labeled set (once,
shared by the strategies), then for each strategy (``random`` and ``huale`` by default) repeats
score pool -> select -> label -> fine-tune -> evaluate for ``cycles`` cycles, and ends with the
report table and the path of the learning-curve PNG. It is a plain :mod:`huale.engine.loop` run
(``OUT/run``), so an interrupted demo continues where it stopped when started again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from huale.engine.loop import CONFIG_NAME, resume_run, start_run
from huale.engine.loop_config import LoopConfig, config_from_dict
from huale.errors import ConfigError
from huale.reports import write_report


@dataclass
class DemoConfig:
    """Demo sizes. Defaults: 400 images (300 pool / 100 test), 60 initial labeled images trained
    from scratch for ``initial_epochs``, +``budget`` per cycle, each later cycle fine-tuning the
    previous model for ``epochs`` epochs ("continue"); 4 cycles; random against huale."""

    out: str = "runs/demo"
    images: int = 400
    image_size: int = 192
    initial: int = 60
    budget: int = 20
    cycles: int = 4
    initial_epochs: int = 16
    epochs: int = 4
    strategies: tuple[str, ...] = ("random", "huale")
    seed: int = 0
    device: str = "auto"
    batch_size: int = 4

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / "run"

    def loop_config(self) -> LoopConfig:
        """The :class:`LoopConfig` the demo runs."""
        if self.cycles < 2:
            raise ConfigError(f"the demo needs at least 2 cycles to select anything (got {self.cycles})")
        data_dir = (Path(self.out) / "synthetic").resolve()
        first_step = max(1, round(self.initial_epochs * 0.75))
        values = {
            "name": "demo",
            "data": {
                "source": str(data_dir),
                "synthetic": {"num_images": self.images, "seed": 0, "image_size": self.image_size},
            },
            "model": {"arch": "small", "min_size": self.image_size, "max_size": self.image_size,
                      "loss": "torchvision"},
            "train": {"epochs": self.epochs, "lr": 0.01, "lr_steps": [max(1, self.epochs - 1)],
                      "warmup_iters": 20, "batch_size": self.batch_size, "workers": 0},
            "loop": {
                "initial": self.initial, "budget": self.budget, "cycles": self.cycles,
                "reinit": "continue",
                "initial_train": {"epochs": self.initial_epochs, "lr": 0.02,
                                  "lr_steps": [first_step], "warmup_iters": 100},
            },
            "strategies": list(self.strategies),
            "seeds": [self.seed],
            "metrics": ["voc"],
            "scoring": {"batch_size": 16, "workers": 0},
            "device": self.device,
        }
        return config_from_dict(values)


def _same_config(run_dir: Path, config: LoopConfig) -> bool:
    stored = yaml.safe_load((run_dir / CONFIG_NAME).read_text())
    return stored == yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False))


def run_demo(config: DemoConfig, *, progress: bool = True) -> dict:
    """Run (or finish) the demo loop and write its report.

    Returns ``{"markdown": path, "png": path, "table": str, "seconds": float}``.
    """
    started = time.perf_counter()
    loop_config = config.loop_config()
    run_dir = config.run_dir
    print(
        f"huale demo: {config.images} synthetic images, {config.initial} labeled at the start, "
        f"+{config.budget} per cycle, {config.cycles} cycles, strategies {', '.join(config.strategies)}"
    )
    if (run_dir / CONFIG_NAME).is_file():
        if not _same_config(run_dir, loop_config):
            raise ConfigError(
                f"{run_dir} holds a demo run with other settings; choose another --out or delete it"
            )
        print(f"continuing the demo run in {run_dir}")
        resume_run(run_dir, progress=progress)
    else:
        start_run(loop_config, run_dir, progress=progress)
    paths = write_report([run_dir])
    table = paths["markdown"].read_text()
    print(table.split("![learning curve]")[0].rstrip())
    seconds = time.perf_counter() - started
    print(f"\ndemo done in {seconds:.0f}s; learning curve: {paths['png']}; report: {paths['markdown']}")
    return {**paths, "table": table, "seconds": seconds}
