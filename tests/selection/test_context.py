import numpy as np
import torch

from huale.inference import ScoringRequest
from huale.models.detector import build_detector
from huale.predictions import Needs
from huale.selection.context import build_selection_context

CPU = ScoringRequest(device="cpu", progress=False)


def test_class_quality_from_the_training_ema_needs_no_extra_pass(tiny_dataset, tmp_path):
    model = build_detector("small", 2, min_size=64, max_size=64, loss="+emphasis")
    model.roi_heads.class_quality.copy_(torch.tensor([0.25, 0.75]))
    context = build_selection_context(
        model, tiny_dataset, Needs(class_quality=True), tiny_dataset.class_names,
        CPU, shard_dir=tmp_path / "labeled",
    )
    np.testing.assert_allclose(context.class_quality, [0.25, 0.75])
    assert not (tmp_path / "labeled").exists()  # the labeled set was not predicted
    np.testing.assert_array_equal(context.labeled_class_counts, tiny_dataset.class_counts())


def test_class_quality_is_measured_when_the_head_does_not_track_it(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    model = build_detector("small", 2, min_size=64, max_size=64)
    context = build_selection_context(
        model, tiny_dataset, Needs(class_quality=True), tiny_dataset.class_names,
        CPU, shard_dir=tmp_path / "labeled",
    )
    assert context.class_quality.shape == (2,)
    assert ((context.class_quality >= 0) & (context.class_quality <= 1)).all()
    assert (tmp_path / "labeled").exists()


def test_class_quality_predicts_a_seeded_subset_of_a_large_labeled_set(tiny_dataset, monkeypatch):
    from huale.selection import context as context_module

    scored = []
    real = context_module.score_pool

    def spy(model, dataset, *args, **kwargs):
        scored.append(list(dataset.ids))
        return real(model, dataset, *args, **kwargs)

    monkeypatch.setattr(context_module, "score_pool", spy)
    torch.manual_seed(0)
    model = build_detector("small", 2, min_size=64, max_size=64)
    options = dict(request=CPU, quality_images=2)
    for seed in (0, 0, 1):
        context = build_selection_context(model, tiny_dataset, Needs(class_quality=True),
                                          tiny_dataset.class_names, seed=seed, **options)
        assert context.class_quality.shape == (2,)
    assert len(tiny_dataset) > 2 and [len(ids) for ids in scored] == [2, 2, 2]
    assert scored[0] == scored[1] and set(scored[0]) <= set(tiny_dataset.ids)  # seeded
    # core-set's labeled features need every labeled image: no subset then
    build_selection_context(model, tiny_dataset, Needs(class_quality=True, labeled_features=True),
                            tiny_dataset.class_names, **options)
    assert len(scored[-1]) == len(tiny_dataset)
