"""The positive control's fine-tuning pieces (``utils.train``): the split head, the frozen blocks,
the cached residual and the paired batches, on the shipped toy ViViT (fast: no training)."""

import numpy as np
import pytest
import torch
from transformers import VivitForVideoClassification

from utils.synthetic import ACTIONS, render_clip
from utils.toy_models import fast_preprocess
from utils.train import (
    ARCHS,
    OUTCOME_CLASSES,
    _pair_index,
    freeze_below,
    frozen_residual,
    initial_model,
    outcome_label,
    top_logits,
)


@pytest.fixture(scope="module")
def base():
    return VivitForVideoClassification.from_pretrained(ARCHS["vivit"].out_dir, local_files_only=True).eval()


@pytest.fixture(scope="module")
def fresh():
    spec = ARCHS["outcome"]
    config = spec.config(len(spec.classes), dict(enumerate(spec.classes)))
    return initial_model(spec, config).eval()


def test_the_split_head_starts_from_the_bowling_row_plus_and_minus_one_vector(base, fresh):
    old, new = base.classifier.weight, fresh.classifier.weight
    strike, gutter = OUTCOME_CLASSES.index("bowling strike"), OUTCOME_CLASSES.index("bowling gutter")
    bowling = ACTIONS.index("bowling")
    delta = new[strike] - old[bowling]
    torch.testing.assert_close(new[gutter] - old[bowling], -delta)
    torch.testing.assert_close(delta.norm(), old[bowling].norm())  # not equal rows: they would never part
    for i, name in enumerate(OUTCOME_CLASSES):
        if name in ACTIONS:
            assert torch.equal(new[i], old[ACTIONS.index(name)]), name
            assert torch.equal(fresh.classifier.bias[i], base.classifier.bias[ACTIONS.index(name)]), name
    base_weights = base.state_dict()
    assert all(torch.equal(v, base_weights[k]) for k, v in fresh.state_dict().items() if not k.startswith("classifier"))


def test_top_logits_from_the_cached_residual_equal_the_model(fresh):
    """Training from the residual cached before block 8 computes the model's own logits."""
    clips = np.stack([render_clip("bowling", 7, "strike"), render_clip("curling", 8)])
    residual = frozen_residual(fresh, clips, 8, batch_size=1)
    with torch.inference_mode():
        want = fresh(pixel_values=fast_preprocess(torch.from_numpy(clips))).logits
        got = top_logits(fresh, residual, 8)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_freeze_below_leaves_only_the_top_blocks_to_train():
    spec = ARCHS["outcome"]
    model = VivitForVideoClassification(spec.config(len(spec.classes), dict(enumerate(spec.classes))))
    trained = {id(p) for p in freeze_below(model, 8)}
    names = {n for n, p in model.named_parameters() if id(p) in trained}
    assert names and all(n.startswith(("vivit.layers.8.", "vivit.layers.9.", "vivit.layers.10.", "vivit.layers.11.",
                                       "vivit.layernorm.", "classifier.")) for n in names)
    assert any(n.startswith("vivit.layers.8.") for n in names) and "classifier.weight" in names
    assert len(freeze_below(VivitForVideoClassification(model.config), 0)) == len(list(model.parameters()))


def test_pair_index_finds_the_matched_pairs_and_refuses_unpaired_sets():
    spec = ARCHS["outcome"]
    jobs = [("bowling", 0, "strike"), ("bowling", 0, "gutter"), ("curling", 0, None), ("bowling", 1, "strike"),
            ("bowling", 1, "gutter"), ("juggling", 1, None)]
    labels = np.array([outcome_label(a, o) for a, _, o in jobs])
    pairs, others = _pair_index(spec, labels)
    assert pairs.tolist() == [[0, 1], [3, 4]] and others.tolist() == [2, 5]
    with pytest.raises(ValueError, match="matched pairs"):
        _pair_index(spec, labels[[1, 0, 2, 3, 4, 5]])


def test_a_recipe_that_fine_tunes_a_missing_model_says_what_to_run(monkeypatch, tmp_path):
    from utils import paths

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path)
    spec = ARCHS["outcome"]
    with pytest.raises(FileNotFoundError, match="make toy-model"):
        initial_model(spec, spec.config(len(spec.classes), dict(enumerate(spec.classes))))
