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
