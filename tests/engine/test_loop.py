"""The active-learning loop on a toy protocol: growth of the labeled set, sharing, resume, lock."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from huale.engine import loop as loop_module
from huale.engine.loop import MACHINE_KEYS, resume_run, start_run
from huale.engine.loop_config import config_from_dict, load_loop_config
from huale.errors import ConfigError, DataError
from huale.presets import preset_names
from huale.reports import load_records, write_report


def toy_config(data_dir: Path, strategies=("random", "entropy"), cycles=3) -> dict:
    return {
        "name": "toy",
        "data": {"source": str(data_dir), "synthetic": {"num_images": 24, "seed": 0, "image_size": 96}},
        "model": {"arch": "small", "min_size": 96, "max_size": 96},
        "train": {"epochs": 1, "lr": 0.01, "lr_steps": [], "warmup_iters": 0, "batch_size": 2, "workers": 0},
        "loop": {"initial": 4, "budget": 3, "cycles": cycles},
        "strategies": list(strategies),
        "seeds": [0],
        "scoring": {"batch_size": 4},
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    config = config_from_dict(toy_config(root / "data"))
    records = start_run(config, root / "run", progress=False)
    return root, records


def test_labeled_set_grows_by_the_budget_without_repeats(finished_run):
    _, records = finished_run
    for strategy in ("random", "entropy"):
        cycles = [r for r in records if r.strategy == strategy]
        assert [r.cycle for r in cycles] == [0, 1, 2]
        assert [r.num_labeled for r in cycles] == [4, 7, 10]
        for before, after in zip(cycles, cycles[1:], strict=False):
            new = [s["image_id"] for s in before.selected]
            assert len(new) == 3 and not set(new) & set(before.labeled_ids)
            assert after.labeled_ids == before.labeled_ids + new
        assert cycles[-1].selected == []  # the last cycle only trains and evaluates
        assert 0.0 <= cycles[-1].value("voc") <= 1.0


def test_first_cycle_is_shared_between_strategies(finished_run):
    root, records = finished_run
    first = {r.strategy: r for r in records if r.cycle == 0}
    assert first["random"].labeled_ids == first["entropy"].labeled_ids
    assert first["random"].metrics == first["entropy"].metrics
    assert (root / "run" / "shared" / "seed0" / "cycle0" / "model.pt").is_file()
    assert not (root / "run" / "random" / "seed0" / "cycle0" / "train").exists()
    env = json.loads((root / "run" / "environment.json").read_text())
    assert {"torch", "torchvision", "huale", "device", "cpu", "cpu_capability"} <= set(env)
    assert env["cpu"] and env["cpu_capability"]  # CPU results depend on the kernels torch picked
    # every record names its machine, so that a report can check what it pairs
    assert all(r.machine == {k: env[k] for k in MACHINE_KEYS if k in env} for r in records)


def test_report_of_a_run(finished_run):
    root, _ = finished_run
    paths = write_report([root / "run"])
    text = paths["markdown"].read_text()
    assert "| random |" in text and "| entropy |" in text and "gain vs random" in text
    assert "Every record ran on one machine:" in text


def test_existing_run_is_not_overwritten_and_resume_is_a_no_op(finished_run):
    root, records = finished_run
    with pytest.raises(ConfigError, match="--resume"):
        start_run(config_from_dict(toy_config(root / "data")), root / "run", progress=False)
    again = resume_run(root / "run", progress=False)
    assert [(r.strategy, r.cycle, r.selected) for r in again] == [
        (r.strategy, r.cycle, r.selected) for r in records
    ]


def test_resume_after_a_crash_gives_the_same_selections(finished_run, tmp_path, monkeypatch):
    root, records = finished_run
    config = config_from_dict(toy_config(root / "data"))
    calls = {"n": 0}
    real = loop_module.select_with_model

    def crash_on_second_selection(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "select_with_model", crash_on_second_selection)
    with pytest.raises(KeyboardInterrupt):
        start_run(config, tmp_path / "run", progress=False)
    monkeypatch.setattr(loop_module, "select_with_model", real)
    resumed = resume_run(tmp_path / "run", progress=False)
    assert [(r.strategy, r.cycle, r.labeled_ids, r.selected, r.metrics) for r in resumed] == [
        (r.strategy, r.cycle, r.labeled_ids, r.selected, r.metrics) for r in records
    ]
    assert len(load_records([tmp_path / "run"])) == len(records)


def test_finished_trainings_drop_their_resume_checkpoint(finished_run, tmp_path):
    root, _ = finished_run
    assert list((root / "run").rglob("model.pt")) and not list((root / "run").rglob("checkpoint.pt"))
    values = toy_config(root / "data", strategies=("random",), cycles=2)
    values["loop"]["keep_checkpoints"] = True
    start_run(config_from_dict(values), tmp_path / "kept", progress=False)
    assert len(list((tmp_path / "kept").rglob("checkpoint.pt"))) == 2  # cycle 0 and cycle 1


def test_a_run_gains_strategies_that_reuse_its_cycle0_models(finished_run, tmp_path, monkeypatch):
    root, records = finished_run
    start_run(config_from_dict(toy_config(root / "data", strategies=("random",))), tmp_path / "run",
              progress=False)
    trainings = []
    real_train = loop_module.train_detector

    def counting_train(model, labeled, *args, **kwargs):
        trainings.append(kwargs["out_dir"])
        return real_train(model, labeled, *args, **kwargs)

    monkeypatch.setattr(loop_module, "train_detector", counting_train)
    extended = resume_run(tmp_path / "run", progress=False, add_strategies=["entropy"])
    # only entropy's cycles 1 and 2 train: cycle 0 is the run's shared model
    assert [p.relative_to(tmp_path / "run").parts[:3] for p in trainings] == [
        ("entropy", "seed0", "cycle1"), ("entropy", "seed0", "cycle2")]
    # the same records as a run that had both strategies from the start
    assert [(r.strategy, r.cycle, r.labeled_ids, r.selected, r.metrics) for r in extended] == [
        (r.strategy, r.cycle, r.labeled_ids, r.selected, r.metrics) for r in records]
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert [s["name"] for s in stored["strategies"]] == ["random", "entropy"]
    # a later plain resume knows both strategies
    assert len(resume_run(tmp_path / "run", progress=False)) == len(records)


def test_a_run_gains_seeds_and_labeled_variants_from_a_matching_config(finished_run, tmp_path):
    root, _ = finished_run
    base = config_from_dict(toy_config(root / "data", strategies=("random",), cycles=1))
    variants = toy_config(root / "data", cycles=1)
    variants["strategies"] = ["random", {"name": "entropy", "label": "entropy-mean",
                                         "options": {"reduction": "mean"}}]
    source = config_from_dict(variants)
    extended = base.extended(["entropy-mean", "random"], [1, 0], source=source)
    assert [(s.key, s.name, s.options) for s in extended.strategies] == [
        ("random", "random", {}), ("entropy-mean", "entropy", {"reduction": "mean"})]
    assert extended.seeds == [0, 1]
    different = dict(variants, train={**variants["train"], "epochs": 2})
    with pytest.raises(ConfigError, match="differs from the run's stored config in train"):
        base.extended(["entropy-mean"], source=config_from_dict(different))
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        base.extended(["nope"])


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_is_a_valid_config(preset):
    config = load_loop_config(preset)
    assert config.loop.cycles >= 3 and len(config.seeds) >= 3 and config.strategies


def test_config_errors_name_the_problem(tmp_path):
    values = toy_config(tmp_path)
    with pytest.raises(ConfigError, match="epochz"):
        config_from_dict({**values, "train": {"epochz": 1}})
    with pytest.raises(ConfigError, match="no_such_strategy"):
        config_from_dict({**values, "strategies": ["no_such_strategy"]})
    data = values["data"]
    with pytest.raises(ConfigError, match="data.synthetic: unknown synthetic option.*'clip_len'"):
        config_from_dict({**values, "data": {**data, "synthetic": {"clip_len": 3}}})
    with pytest.raises(ConfigError, match="data.synthetic: synthetic clip_length must be"):
        config_from_dict({**values, "data": {**data, "synthetic": {"clip_length": 0}}})
    with pytest.raises(ConfigError, match="reinit"):
        config_from_dict({**values, "loop": {"reinit": "sometimes"}})
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_loop_config(path)
    path.write_text(yaml.safe_dump({**values, "colour": "blue"}))
    with pytest.raises(ConfigError, match="colour"):
        load_loop_config(path)


def test_continue_mode_fine_tunes_the_previous_model_and_cycle0_has_its_own_epochs(tmp_path, monkeypatch):
    values = toy_config(tmp_path / "data", strategies=("random",), cycles=3)
    values["loop"] = {**values["loop"], "reinit": "continue", "initial_train": {"epochs": 2}}
    built = []
    original = loop_module.ActiveLearningLoop._build_model

    def spy(self, num_classes, seed, init_from, **kwargs):
        built.append(init_from)
        model = original(self, num_classes, seed, init_from, **kwargs)
        # the continued model keeps the from-scratch modules (not the pretrained-weights defaults)
        norms = {type(m).__name__ for m in model.backbone.body.modules() if "BatchNorm" in type(m).__name__}
        assert norms == {"BatchNorm2d"}
        if init_from is not None:
            reference = torch.load(init_from, map_location="cpu", weights_only=True)["state_dict"]
            assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
        return model

    monkeypatch.setattr(loop_module.ActiveLearningLoop, "_build_model", spy)
    run = tmp_path / "run"
    start_run(config_from_dict(values), run, progress=False)
    cycle_dirs = [run / "shared" / "seed0" / "cycle0",
                  run / "random" / "seed0" / "cycle1" / "train",
                  run / "random" / "seed0" / "cycle2" / "train"]
    assert built == [None, cycle_dirs[0] / "model.pt", cycle_dirs[1] / "model.pt"]
    epochs = [len(json.loads((d / "history.json").read_text())["history"]) for d in cycle_dirs]
    assert epochs == [2, 1, 1]


def test_initial_train_errors_name_the_option(tmp_path):
    values = toy_config(tmp_path)
    with pytest.raises(ConfigError, match="initial_train.*epochz"):
        config_from_dict({**values, "loop": {**values["loop"], "initial_train": {"epochz": 3}}})
    with pytest.raises(ConfigError, match="initial_train.*epochs must be >= 1"):
        config_from_dict({**values, "loop": {**values["loop"], "initial_train": {"epochs": 0}}})


def test_bccd_preset_runs_on_the_committed_bccd_sample(tmp_path):
    # the real BCCD layout and classes through the preset; only the sizes are shrunk for the test
    bccd = Path(__file__).resolve().parents[1] / "assets" / "bccd"
    config = load_loop_config("bccd", overrides={
        "data": {"source": str(bccd), "train_split": "trainval"},
        "model": {"min_size": 128, "max_size": 160},
        "train": {"epochs": 1, "lr_steps": [], "warmup_iters": 0, "batch_size": 1},
        "loop": {"initial": 1, "budget": 1, "cycles": 2},
        "strategies": ["random", "huale"], "seeds": [0],
    })
    records = start_run(config, tmp_path / "run", progress=False)
    last = {r.strategy: r for r in records if r.cycle == 1}
    assert set(last) == {"random", "huale"}
    for record in last.values():
        assert record.num_labeled == 2 and sorted(record.labeled_ids) == ["BloodImage_00001", "BloodImage_00338"]
        assert set(record.metrics["voc"]["per_class"]) == {"Platelets", "RBC", "WBC"}


def test_strategy_filter_keeps_labeled_variants_and_their_options():
    config = load_loop_config("synthetic-cpu-huale-ablation")
    chosen = config.with_strategies(["huale-stage1-only", "random"])
    assert [(s.key, s.name, s.options) for s in chosen.strategies] == [
        ("huale-stage1-only", "huale", {"pool_multiplier": 1.0}), ("random", "random", {})]
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        config.with_strategies(["nope"])


def test_validation_split_is_held_out_and_evaluated_every_cycle(tmp_path):
    values = toy_config(tmp_path / "data", strategies=("random", "entropy"), cycles=2)
    values["loop"] = {**values["loop"], "validation": 0.25}
    run = tmp_path / "run"
    records = start_run(config_from_dict(values), run, progress=False)
    config = loop_module.load_run_config(run)
    pool, _ = loop_module.load_run_datasets(config.data, progress=False)
    held_out = loop_module.validation_ids(pool, config.loop)
    assert len(held_out) == round(0.25 * len(pool))
    for record in records:
        touched = set(record.labeled_ids) | {s["image_id"] for s in record.selected}
        assert not touched & set(held_out)  # never trained on, never selectable
        assert set(record.metrics) == set(record.validation_metrics) == {"voc"}
        assert 0.0 <= record.value("voc", split="validation") <= 1.0
    assert (run / "shared" / "seed0" / "cycle0" / loop_module.VALIDATION_EVAL_NAME).is_file()
    assert (run / "random" / "seed0" / "cycle1" / loop_module.VALIDATION_EVAL_NAME).is_file()
    text = write_report([run])["markdown"].read_text()
    assert "validation split" in text and "test split" in text


def test_validation_list_file_and_its_errors(tmp_path):
    values = toy_config(tmp_path / "data", strategies=("random",), cycles=1)
    values["loop"] = {**values["loop"], "validation": "val.txt"}
    config_path = tmp_path / "loop.yaml"
    config_path.write_text(yaml.safe_dump(values))
    (tmp_path / "val.txt").write_text("# held out\n")
    config = load_loop_config(config_path)
    assert config.loop.validation == str(tmp_path / "val.txt")  # relative to the config file
    pool, _ = loop_module.load_run_datasets(config.data, progress=False)
    (tmp_path / "val.txt").write_text(f"# held out\n{pool.ids[3]}\n{pool.ids[1]}\n")
    assert loop_module.validation_ids(pool, config.loop) == [pool.ids[1], pool.ids[3]]
    (tmp_path / "val.txt").write_text("no_such_image\n")
    with pytest.raises(DataError, match="val.txt.*no_such_image"):
        loop_module.validation_ids(pool, config.loop)
    for bad in (0.0, 1.0, 1.5, True):
        with pytest.raises(ConfigError, match="loop.validation"):
            config_from_dict({**values, "loop": {**values["loop"], "validation": bad}})


def test_box_budget_spends_ground_truth_boxes(tmp_path):
    values = toy_config(tmp_path / "data", strategies=("random", "entropy"), cycles=3)
    values["loop"] = {**values["loop"], "budget_unit": "boxes", "budget": 12}
    records = start_run(config_from_dict(values), tmp_path / "run", progress=False)
    config = loop_module.load_run_config(tmp_path / "run")
    pool, _ = loop_module.load_run_datasets(config.data, progress=False)

    def boxes(ids):
        return sum(pool.record(i).num_boxes for i in ids)

    for record in records:
        assert record.num_boxes == boxes(record.labeled_ids)  # labeling cost so far
        picked = [s["image_id"] for s in record.selected]
        if record.cycle < 2:
            cost = sum(max(1, pool.record(i).num_boxes) for i in picked)
            assert picked and cost <= 12
        else:
            assert picked == []
    with pytest.raises(ConfigError, match="budget_unit"):
        config_from_dict({**values, "loop": {**values["loop"], "budget_unit": "hours"}})


def test_resume_options_that_would_change_a_run_are_refused(finished_run, capsys):
    from huale.cli import main

    root, _ = finished_run
    for argv, message in (
        (["--out", str(root / "other")], "--out, --cycles and --device cannot change it"),
        (["--cycles", "5"], "--out, --cycles and --device cannot change it"),
        (["--config", "synthetic-cpu"], "--config only defines the --strategies to add"),
        (["--config", "synthetic-cpu", "--strategies", "cald"], "differs from the run's stored config in data"),
    ):
        assert main(["-q", "loop", "--resume", str(root / "run"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_equal_labeled_sets_train_equal_models_whatever_their_order(tmp_path, monkeypatch):
    """loop.train_order "pool" (the default) trains a labeled set in pool order: the initial
    sample listed in reverse gives the same cycle-0 and cycle-1 models and records; "selection"
    (runs made before the option) trains in the listed order, which changes the model."""
    from huale.engine.loop import training_order

    assert training_order(["a", "b", "c", "d"], ["d", "b"], "pool") == ["b", "d"]
    assert training_order(["a", "b", "c", "d"], ["d", "b"], "selection") == ["d", "b"]
    values = toy_config(tmp_path / "data", strategies=("random",), cycles=2)
    base = start_run(config_from_dict(values), tmp_path / "pool", progress=False)
    real = loop_module.sample_ids
    monkeypatch.setattr(loop_module, "sample_ids", lambda *a, **k: real(*a, **k)[::-1])
    flipped = start_run(config_from_dict(values), tmp_path / "flipped", progress=False)
    assert flipped[0].labeled_ids == base[0].labeled_ids[::-1]  # the record keeps the labeled order
    assert [(r.selected, r.metrics) for r in flipped] == [(r.selected, r.metrics) for r in base]
    models = ["shared/seed0/cycle0/model.pt", "random/seed0/cycle1/train/model.pt"]
    assert all(_same_weights(tmp_path / "pool" / m, tmp_path / "flipped" / m) for m in models)
    values["loop"].update(train_order="selection", cycles=1)
    start_run(config_from_dict(values), tmp_path / "selection", progress=False)
    assert not _same_weights(tmp_path / "pool" / models[0], tmp_path / "selection" / models[0])
    # a run stored before the option existed resumes in selection order
    stored = yaml.safe_load((tmp_path / "selection" / "config.yaml").read_text())
    del stored["loop"]["train_order"]
    (tmp_path / "selection" / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    assert loop_module.load_run_config(tmp_path / "selection").loop.train_order == "selection"
    values["loop"]["train_order"] = "shuffled"
    with pytest.raises(ConfigError, match="train_order must be one of"):
        config_from_dict(values)
