"""The analysed clips never come from the toy model's training, validation or test seeds."""

import json

import pytest

from utils.data import CANONICAL_SEED, synthetic_specs
from utils.train import SEEDS


def split_of(seed: int) -> str | None:
    return next((name for name, seeds in SEEDS.items() if seed in seeds), None)


@pytest.mark.parametrize("n_pairs, unmatched", [(32, 16), (0, 0), (500, 500)])
def test_no_analysed_seed_lies_in_a_split(n_pairs, unmatched):
    seeds = {s for _, a, b, _ in synthetic_specs(n_pairs, unmatched) for s in (a, b)}
    assert CANONICAL_SEED in seeds
    used = {s: split_of(s) for s in seeds if split_of(s)}
    assert not used, f"analysed seeds inside training splits: {used}"


def test_the_check_itself_sees_an_overlap():
    assert split_of(42) == "train" and split_of(100_001) == "val" and split_of(200_050) == "test"


def test_every_prepared_clip_of_a_toy_run_is_held_out(tmp_path):
    """Notebook 00's manifest (written by the same code) records a held-out seed for each clip."""
    from utils.data import prepare, synthetic_clips
    from utils.models import load_model

    loaded = load_model("toy", device="cpu")
    manifest = prepare(loaded, synthetic_clips(loaded, 2, 1), tmp_path)
    seeds = [c["seed"] for c in json.loads((tmp_path / "manifest.json").read_text())["clips"]]
    assert len(seeds) == 8 and not [s for s in seeds if split_of(s)]
    assert manifest["target_index"] == 0 and manifest["preprocess"] == "checkpoint"
    assert all(c["is_target"] for c in manifest["clips"][:2]), "the canonical pair must be called bowling"


def test_mean_ablation_reference_seeds_are_apart_from_every_split_and_pair():
    from utils.data import REFERENCE_SEED_BASE

    reference = set(range(REFERENCE_SEED_BASE, REFERENCE_SEED_BASE + 1000))
    assert not [s for s in reference if split_of(s)]
    analysed = {s for _, a, b, _ in synthetic_specs(500, 500, 500) for s in (a, b)}
    assert not reference & analysed


def test_a_model_with_a_contrast_class_expects_its_gutter_clips_there():
    """toy-outcome's gutter clips belong to 'bowling gutter': the tables' note must not call them
    misclassified, and must still flag a strike clip called gutter."""
    from types import SimpleNamespace

    import numpy as np

    from utils.data import Clip, Prepared, expected_classes

    labels = {0: "bowling strike", 1: "bowling gutter", 2: "curling"}
    control = SimpleNamespace(config=SimpleNamespace(contrast_class="bowling gutter"), id2label=labels, target_index=0)
    action_only = SimpleNamespace(config=SimpleNamespace(), id2label=labels, target_index=0)
    clips = [Clip(f"pair000_{o}", 0, 1, o, "synthetic", np.zeros((1, 2, 2, 3), np.uint8)) for o in ("strike", "gutter")]
    assert expected_classes(control, clips) == [0, 1]
    assert expected_classes(action_only, clips) == [0, 0]
    with pytest.raises(ValueError, match="contrast_class"):
        expected_classes(SimpleNamespace(config=SimpleNamespace(contrast_class="nope"), id2label=labels,
                                         target_index=0), clips)
    manifest = {"target": "bowling strike", "target_index": 0, "clips": [
        {"id": "pair000_strike", "expected": "bowling strike", "is_target": False},
        {"id": "pair000_gutter", "expected": "bowling gutter", "is_target": True}]}
    text = Prepared(manifest, [], None, None).note()
    assert "1 clip(s)" in text and "pair000_strike" in text and "pair000_gutter" not in text
    assert "not classified as expected ('bowling strike' (class 0); gutter clips: 'bowling gutter')" in text
