import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from utils import paths
from utils.models import ModelLoadError, fast_preprocess, load_model
from utils.synthetic import ACTIONS, render_clip

FIXTURE = paths.FIXTURES_DIR / "vivit-tf4"


def test_toy_model_facts(toy):
    assert toy.num_layers == 12 and toy.num_heads == 12
    assert toy.num_frames == 16 and toy.image_size == 96
    assert toy.grid == (8, 6, 6) and toy.num_patches == 288
    assert toy.id2label[toy.target_index] == "bowling"
    assert list(toy.id2label.values()) == list(ACTIONS)
    assert not toy.model.training and not toy.untrained


def test_toy_checkpoint_is_small_and_documented():
    size = sum(f.stat().st_size for f in paths.TOY_MODEL_DIR.iterdir() if f.is_file())
    assert size < 10 * 2**20
    card = (paths.TOY_MODEL_DIR / "README.md").read_text()
    assert "Held-out accuracy" in card and (paths.TOY_MODEL_DIR / "training_curve.png").is_file()


def test_processor_equals_training_fast_path(toy):
    clip = render_clip("juggling", 3)
    torch.testing.assert_close(toy.preprocess(clip), fast_preprocess(torch.from_numpy(clip)[None]))


def test_preprocess_samples_frames_and_rejects_bad_arrays(toy):
    long_clip = render_clip("pendulum", 1, num_frames=40)
    assert toy.preprocess(long_clip).shape == (1, 16, 3, 96, 96)
    with pytest.raises(ValueError, match="uint8"):
        toy.preprocess(np.zeros((16, 96, 96), np.uint8))


def test_fresh_held_out_clips_are_classified(toy):
    """Seeds never used in training (training used 0..249, test 200000..)."""
    seeds = range(900_000, 900_012)
    with torch.inference_mode():
        for action in ACTIONS:
            outcomes = ("strike", "gutter") if action == "bowling" else (None,)
            for outcome in outcomes:
                x = torch.cat([toy.preprocess(render_clip(action, s, outcome)) for s in seeds])
                acc = (toy.logits(x).argmax(-1) == ACTIONS.index(action)).float().mean()
                assert acc >= 0.9, (action, outcome, float(acc))


@pytest.mark.slow
def test_paper_shape_is_vivit_b_at_paper_scale():
    m = load_model("paper-shape")
    assert m.untrained and "untrained" in m.name
    assert (m.num_layers, m.num_heads, m.num_frames, m.image_size) == (12, 12, 32, 224)
    assert m.num_patches == 3136 and m.target_index == 31 and m.target_label == "bowling"
    assert len(m.id2label) == 400
    x = m.preprocess(render_clip("bowling", 0, "strike", num_frames=32, size=224))
    assert x.shape == (1, 32, 3, 224, 224)
    with torch.inference_mode():
        emb = m.model.vivit.embeddings(x)
    assert emb.shape == (1, 3137, 768)


def test_transformers4_checkpoint_loads_with_no_missing_keys():
    """A fixture saved by transformers 4.x (keys vivit.encoder.layer.N.attention.attention.*)."""
    keys = load_file(FIXTURE / "model.safetensors")
    assert any(k.startswith("vivit.encoder.layer.0.attention.attention.query") for k in keys)
    m = load_model(str(FIXTURE), target="class1")
    info = m.extra["loading_info"]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    expected = load_file(FIXTURE / "expected.safetensors")
    with torch.inference_mode():
        logits = m.logits(expected["pixel_values"])
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-5)
    assert json.loads((FIXTURE / "expected.json").read_text())["transformers"].startswith("4.")


def test_unknown_profile_missing_dir_and_wrong_architecture(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown profile 'resnet'.*toy"):
        load_model("resnet")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nothing"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="'bert' model; only ViViT"):
        load_model(str(tmp_path))


def test_paper_profile_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hf download google/vivit-b-16x2-kinetics400"):
        load_model("paper")
