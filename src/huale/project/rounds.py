"""``huale round``: one labeling round of a project.

A round (``PROJECT/rounds/NNN/``): snapshot the labeled set (``labeled.json``), train on it
(``train/``: the first round from scratch or ``--weights``, later rounds fine-tune the previous
round's model unless ``from_scratch``), evaluate on the validation set if the project has one
(``eval.json``, VOC mAP@0.5), score the unlabeled pool and select (``huale select``'s pipeline:
images already labeled or sent in an earlier round and still outstanding are left out), then
write every export:

- ``selection.csv``, ``selection.json``, ``selected_coco.json`` (COCO with pre-annotations),
- ``labelstudio_tasks.json`` (model_version ``huale-round-NNN``, ``data.huale_round``) and
  ``labelstudio_config.xml`` (the labeling config the tasks fit),
- ``cvat_coco.zip`` (CVAT COCO 1.0),
- ``gallery.html`` + ``thumbnails/`` and ``contact_sheet.png`` (:mod:`huale.labeling.gallery`),

and last ``round.json``, whose presence marks the round finished. A round killed at any point
resumes when ``huale round`` runs again with the same options: training from its last epoch
checkpoint, scoring from its shards, the rest is rewritten. Different options for an unfinished
round are an error (finish it, or delete its folder).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from huale.errors import ConfigError
from huale.io import atomic_write_json, atomic_write_text
from huale.labeling import cvat, gallery, labelstudio
from huale.project.state import ROUND_RECORD, Project

log = logging.getLogger(__name__)

REQUEST = "request.json"
SNAPSHOT = "labeled.json"
EVAL = "eval.json"
EXCLUDED = "excluded.txt"
TRAIN_DIR = "train"

# CPU-friendly defaults (the synthetic-cpu preset's): a longer first training from scratch,
# short fine-tuning of the previous round's model afterwards
FIRST_TRAIN = {"epochs": 16, "lr": 0.02, "lr_steps": (12,), "warmup_iters": 100}
FINETUNE = {"epochs": 5, "lr": 0.01, "lr_steps": (4,), "warmup_iters": 20}


@dataclass
class RoundOptions:
    """Options of ``huale round``; ``epochs``/``lr`` None: the defaults above."""

    budget: int
    strategy: str = "huale"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    budget_unit: str = "images"
    seed: int = 0
    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 4
    from_scratch: bool = False
    preannotation_threshold: float = 0.5
    device: str = "auto"
    workers: int = 0
    score_batch_size: int = 8
    amp: bool = True
    progress: bool = True

    def identity(self) -> dict:
        """The options that make a round what it is (compared when resuming)."""
        keys = ("budget", "strategy", "strategy_options", "budget_unit", "seed", "epochs", "lr",
                "batch_size", "from_scratch", "preannotation_threshold")
        return json.loads(json.dumps({k: getattr(self, k) for k in keys}))

    def train_config(self, fine_tune: bool):
        from huale.engine.train import TrainConfig

        values = dict(FINETUNE if fine_tune else FIRST_TRAIN)
        if self.epochs is not None:
            step = int(0.75 * self.epochs)
            values.update(epochs=self.epochs, lr_steps=(step,) if step >= 1 else ())
        if self.lr is not None:
            values["lr"] = self.lr
        return TrainConfig(**values, batch_size=self.batch_size, workers=self.workers,
                           amp=self.amp, seed=self.seed)


@dataclass
class RoundResult:
    number: int
    record: dict
    resumed: bool

    @property
    def selected(self) -> list[dict]:
        return self.record["selected"]


def run_round(project: Project, options: RoundOptions) -> RoundResult:
    """Run (or resume) the project's next round; holds the project's lock throughout."""
    from huale.strategies import build_strategy

    build_strategy(options.strategy, **options.strategy_options)  # bad options fail before work
    with project.lock():
        number, resumed = _round_number(project)
        rdir = project.round_dir(number)
        _check_request(rdir, options, number)
        record = _run(project, options, number, rdir)
        return RoundResult(number, record, resumed)


def _round_number(project: Project) -> tuple[int, bool]:
    current = project.current_round()
    if current is not None and project.round_record(current) is None:
        log.info("round %d is unfinished: resuming it", current)
        return current, True
    return (current or 0) + 1, False


def _check_request(rdir: Path, options: RoundOptions, number: int) -> None:
    path = rdir / REQUEST
    wanted = options.identity()
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != wanted:
            diff = ", ".join(f"{k}={stored.get(k)!r} (now {wanted.get(k)!r})"
                             for k in wanted if stored.get(k) != wanted.get(k))
            raise ConfigError(f"{rdir}: round {number} is unfinished and was started with {diff}; "
                              f"run it again with the same options, or delete {rdir} to start over")
    else:
        atomic_write_json(path, wanted)


def outstanding(project: Project) -> list[dict]:
    """Images sent by finished rounds that the labeled set does not hold yet (round order)."""
    labeled = {im["file_name"] for im in project.labeled().images}
    return [dict(s, round=r["round"]) for r in project.finished_rounds()
            for s in r["selected"] if s["path"] not in labeled]


def _run(project: Project, options: RoundOptions, number: int, rdir: Path) -> dict:
    from huale.data.coco import read_coco
    from huale.selection.run import SelectConfig, run_selection

    started = time.time()
    snapshot = rdir / SNAPSHOT
    if not snapshot.is_file():
        project.labeled().save(snapshot)
    labeled = read_coco(snapshot, class_names=project.class_names)
    model, fine_tuned = _train(project, options, number, rdir, labeled)
    val = _evaluate(project, options, rdir, model)

    waiting = outstanding(project)
    excluded = None
    if waiting:
        log.warning("%d images sent in earlier rounds are not labeled yet; they are not selected "
                    "again (huale status lists them)", len(waiting))
        excluded = atomic_write_text(rdir / EXCLUDED, "".join(f"{s['path']}\n" for s in waiting))
    config = SelectConfig(
        checkpoint=rdir / TRAIN_DIR / "model.pt", pool=project.pool, budget=options.budget,
        out=rdir, labeled=snapshot, labeled_ids=excluded, budget_unit=options.budget_unit,
        strategy=options.strategy, strategy_options=options.strategy_options, seed=options.seed,
        pool_split=project.config.pool_split, preannotation_threshold=options.preannotation_threshold,
        image_url_prefix=project.config.image_url_prefix, image_root=project.document_root,
        model_version=f"huale-round-{number:03d}", task_data={"huale_round": number},
        batch_size=options.score_batch_size, device=options.device, workers=options.workers,
        amp=options.amp, progress=options.progress,
        resume=True,  # the round owns its folder (training outputs are there); shards resume
    )
    result = run_selection(config)
    selected = _selected_entries(project, rdir)
    files = {k: str(v) for k, v in result.files.items()}
    files["labelstudio_config"] = str(atomic_write_text(
        rdir / labelstudio.LABELING_CONFIG, labelstudio.labeling_config(project.class_names)))
    files["cvat"] = str(_write_cvat(project, rdir, selected))
    files.update({k: str(v) for k, v in _write_gallery(project, options, rdir, number, model,
                                                       selected).items()})
    record = {
        "round": number,
        "options": options.identity(),
        "fine_tuned": fine_tuned,
        "labeled_images": len(labeled),
        "labeled_boxes": int(sum(r.num_boxes for r in labeled.records)),
        "val": val,
        "pool_images": result.pool_size,
        "excluded_outstanding": len(waiting),
        "selected": selected,
        "files": files,
        "seconds": round(time.time() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(rdir / ROUND_RECORD, record)  # last: marks the round finished
    return record


def _train(project: Project, options: RoundOptions, number: int, rdir: Path, labeled):
    from huale.engine.train import MODEL_NAME, train_detector
    from huale.models.checkpoint import build_from_checkpoint
    from huale.models.detector import build_detector

    train_dir = rdir / TRAIN_DIR
    previous = None
    if not options.from_scratch:
        earlier = [n for n in project.rounds() if n < number]
        for n in reversed(earlier):
            path = project.round_dir(n) / TRAIN_DIR / MODEL_NAME
            if path.is_file():
                previous = path
                break
    if (train_dir / MODEL_NAME).is_file():
        model, _ = build_from_checkpoint(train_dir / MODEL_NAME, expected_classes=project.class_names)
        return model, previous is not None
    seed = options.seed * 1000 + number
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if previous is not None:
        model, _ = build_from_checkpoint(previous, expected_classes=project.class_names)
    else:
        m = project.config.model
        model = build_detector(m.arch, len(project.class_names), weights=m.weights,
                               backbone_weights=m.backbone_weights, min_size=m.min_size,
                               max_size=m.max_size)
    config = options.train_config(fine_tune=previous is not None)
    from dataclasses import replace

    config = replace(config, seed=seed)
    log.info("round %d: training on %d labeled images (%s, %d epochs)", number, len(labeled),
             f"fine-tuning {previous}" if previous else "from scratch", config.epochs)
    train_detector(model, labeled, config, out_dir=train_dir, resume=True, device=options.device,
                   progress=options.progress)
    return model, previous is not None


def _evaluate(project: Project, options: RoundOptions, rdir: Path, model) -> dict | None:
    if project.val is None:
        return None
    path = rdir / EVAL
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    from huale.data.loading import load_dataset
    from huale.engine.evaluate import evaluate_model

    val = load_dataset(project.val, project.config.val_split, class_names=project.class_names)
    results, _ = evaluate_model(model, val, ["voc"], batch_size=options.score_batch_size,
                                device=options.device, amp=options.amp, workers=options.workers,
                                progress=options.progress)
    value = results["voc"]["mAP"]
    entry = {"metric": "voc", "mAP": None if not np.isfinite(value) else float(value),
             "images": len(val), "per_class": results["voc"].get("per_class")}
    atomic_write_json(path, entry)
    return entry


def _selected_entries(project: Project, rdir: Path) -> list[dict]:
    """The selected images as the round records them (what ingest matches against)."""
    from huale.labeling.cvat import relative_name
    from huale.selection.export import LABEL_STUDIO_TASKS, SELECTION_JSON
    from huale.selection.pool import pool_root

    selection = json.loads((rdir / SELECTION_JSON).read_text(encoding="utf-8"))
    tasks = json.loads((rdir / LABEL_STUDIO_TASKS).read_text(encoding="utf-8"))
    url_of = {t["data"]["huale_id"]: t["data"]["image"] for t in tasks}
    root = pool_root(project.pool)
    return [
        {
            "image_id": s["image_id"], "rank": s["rank"], "score": s["score"], "stage": s["stage"],
            "path": str(Path(s["path"]).resolve()), "file_name": relative_name(Path(s["path"]), root),
            "width": s["width"], "height": s["height"], "url": url_of.get(s["image_id"]),
            "predicted_boxes": s["predicted_boxes"], "objects": s["objects"],
        }
        for s in selection["selected"]
    ]


def _write_cvat(project: Project, rdir: Path, selected: list[dict]) -> Path:
    from huale.selection.export import SELECTED_COCO

    coco = json.loads((rdir / SELECTED_COCO).read_text(encoding="utf-8"))
    by_coco_id = {im["id"]: im.get("huale_id", str(im["id"])) for im in coco["images"]}
    dets: dict[str, list] = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        dets.setdefault(by_coco_id[a["image_id"]], []).append(([x, y, x + w, y + h], a["category_id"], a["score"]))
    images = []
    for s in selected:
        found = dets.get(s["image_id"], [])
        images.append({
            "file_name": s["file_name"], "width": s["width"], "height": s["height"],
            "rank": s["rank"], "score": s["score"], "boxes": [d[0] for d in found],
            "labels": [d[1] for d in found], "scores": [d[2] for d in found],
        })
    return cvat.write_cvat_zip(rdir / cvat.CVAT_ZIP, images, project.class_names)


def _write_gallery(project: Project, options: RoundOptions, rdir: Path, number: int, model,
                   selected: list[dict]) -> dict[str, Path]:
    """The gallery; the flipped view is predicted again for the selected images only."""
    from huale.data.records import DetectionDataset, ImageRecord
    from huale.inference import ScoringRequest, score_pool
    from huale.predictions import FLIP, ORIGINAL, Needs
    from huale.strategies import build_strategy

    needs = build_strategy(options.strategy, **options.strategy_options).needs
    flips: dict[str, Any] = {}
    if FLIP in needs.views and selected:
        records = [ImageRecord(s["image_id"], Path(s["path"]), s["width"], s["height"]) for s in selected]
        for r in score_pool(model, DetectionDataset(records, project.class_names),
                            Needs(views=(ORIGINAL, FLIP)),
                            ScoringRequest(batch_size=options.score_batch_size,
                                           device=options.device, amp=options.amp, workers=0,
                                           progress=False),
                            seed=options.seed):
            view = r.views[FLIP]
            flips[r.image_id] = view.select(view.scores >= options.preannotation_threshold)
    images = []
    for s in selected:
        flip = flips.get(s["image_id"])
        images.append(gallery.GalleryImage(
            rank=s["rank"], image_id=s["image_id"], path=Path(s["path"]), score=s["score"],
            stage=s["stage"], predicted_boxes=s["predicted_boxes"],
            objects=[gallery.GalleryObject(o["box"], o["class_name"], o["uncertainty"], o["levels"])
                     for o in s["objects"]],
            flip_boxes=None if flip is None else flip.boxes,
            flip_labels=[] if flip is None else
            [f"{project.class_names[int(k) - 1]} {float(p):.2f}" for k, p in zip(flip.labels, flip.scores, strict=True)],
        ))
    return gallery.write_gallery(rdir, images, title=f"huale round {number:03d}: {len(images)} "
                                 f"images to label ({options.strategy})")


def round_summary(record: dict) -> str:
    val = record.get("val")
    score = f", val mAP {100 * val['mAP']:.1f}" if val and val.get("mAP") is not None else ""
    return (f"round {record['round']:03d}: trained on {record['labeled_images']} labeled images"
            f"{score}; selected {len(record['selected'])} of {record['pool_images']} pool images")


__all__ = ["RoundOptions", "RoundResult", "outstanding", "round_summary", "run_round"]
