import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from utils import paths
from utils.labels import ModelLoadError
from utils.models import load_model, profile_config
from utils.profiles import TOY_DIRS
from utils.synthetic import ACTIONS, render_clip
from utils.toy_models import fast_preprocess, frame_indices

FIXTURE = paths.FIXTURES_DIR / "vivit-tf4"


def test_toy_model_facts(toy):
    assert toy.n_layers == 12 and toy.n_heads == 12
    assert toy.num_frames == 16 and toy.image_size == 96
    assert toy.grid == (8, 6, 6) and toy.n_patches == 288
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
    assert (m.n_layers, m.n_heads, m.num_frames, m.image_size) == (12, 12, 32, 224)
    assert m.n_patches == 3136 and m.target_index == 31 and m.target_label == "bowling"
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
    with pytest.raises(ModelLoadError, match="'bert' model; the supported video classifiers are") as err:
        load_model(str(tmp_path))
    for supported in ("vivit", "timesformer", "videomae", "vjepa2"):
        assert supported in str(err.value)
    with pytest.raises(ModelLoadError, match="unknown profile 'resnet'.*toy-timesformer.*videomae-shape"):
        load_model("resnet")


@pytest.mark.parametrize("arch", ["timesformer", "videomae"])
def test_toy_timesformer_and_videomae_profiles(arch):
    """Geometry, labels, target and the processor (= the training fast path, frames sampled
    as in training) of the other two toy models."""
    m = load_model(f"toy-{arch}")
    assert m.arch == arch and m.profile == f"toy-{arch}" and not m.untrained
    assert m.id2label[m.target_index] == "bowling" and list(m.id2label.values()) == list(ACTIONS)
    assert m.grid == (8, 6, 6) and m.n_patches == 288 and m.image_size == 96
    if arch == "timesformer":
        assert m.num_frames == 8 and m.tubelet == (1, 16, 16) and m.has_cls and m.n_tokens == 289
    else:
        assert m.num_frames == 16 and m.tubelet == (2, 16, 16) and not m.has_cls and m.n_tokens == 288
    clip = render_clip("juggling", 3)  # 16 frames: TimeSformer reads 0, 2, ..., 14
    assert m.frame_indices(16).tolist() == frame_indices(arch).tolist()
    torch.testing.assert_close(m.preprocess(clip), fast_preprocess(torch.from_numpy(clip)[None], arch))
    with pytest.raises(ModelLoadError, match="PREPROCESS=original applies to ViViT only"):
        load_model(f"toy-{arch}", preprocess="original")


def test_profile_config_reads_every_architecture_without_weights(tmp_path):
    assert profile_config("toy").model_type == "vivit" and profile_config("toy").num_frames == 16
    assert profile_config("toy-timesformer").num_frames == 8
    assert profile_config("timesformer-shape").num_frames == 8 and profile_config("videomae-shape").num_frames == 16
    assert profile_config("paper-shape").num_frames == 32
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="'bert' model"):
        profile_config(str(tmp_path))


def test_a_missing_toy_checkpoint_says_how_to_train_it(monkeypatch, tmp_path):
    monkeypatch.setitem(TOY_DIRS, "toy-videomae", tmp_path / "toy-videomae")
    with pytest.raises(ModelLoadError, match="make toy-model ARCH=videomae"):
        load_model("toy-videomae")


def test_vivit_frame_sampling_is_unchanged(toy):
    """ViViT keeps its evenly spaced (rounded) sampling; it differs from every-k-th at 32 frames."""
    assert toy.frame_indices(32).tolist() == np.linspace(0, 31, 16).round().astype(int).tolist()
    assert toy.frame_indices(16).tolist() == list(range(16))


@pytest.mark.slow
@pytest.mark.parametrize("profile, frames, grid, tokens", [("timesformer-shape", 8, (8, 14, 14), 1569),
                                                           ("videomae-shape", 16, (8, 14, 14), 1568)])
def test_shape_profiles_copy_the_public_configs(profile, frames, grid, tokens):
    m = load_model(profile)
    assert m.untrained and "untrained" in m.name and m.profile == profile
    assert (m.n_layers, m.n_heads, m.config.hidden_size, m.config.intermediate_size) == (12, 12, 768, 3072)
    assert (m.num_frames, m.image_size, m.grid, m.n_tokens) == (frames, 224, grid, tokens)
    assert len(m.id2label) == 400 and m.target_index == 31 and m.target_label == "bowling"
    if profile == "timesformer-shape":
        assert m.config.attention_type == "divided_space_time" and m.config.qkv_bias
    else:
        assert m.config.use_mean_pooling and m.config.qv_bias and m.config.tubelet_size == 2
        assert m.model.videomae.layernorm is None and m.model.fc_norm is not None
    x = m.preprocess(render_clip("bowling", 0, "strike", num_frames=32, size=256))
    assert x.shape == (1, frames, 3, 224, 224)
    with torch.inference_mode():
        emb = getattr(m.model, m.arch).embeddings
        assert (emb(x) if m.arch == "timesformer" else emb(x, None)).shape == (1, tokens, 768)


@pytest.mark.slow
def test_vjepa2_shape_copies_the_public_ssv2_classifier():
    """vjepa2-shape: V-JEPA 2 ViT-L with its SSv2 head (no Kinetics V-JEPA 2 classifier exists),
    random weights; no bowling class, so class 0 is analysed (its default_target); 256 px
    frames, tubelets of 2 x 16 x 16, no CLS: 2048 tokens."""
    m = load_model("vjepa2-shape")
    assert m.untrained and m.arch == "vjepa2"
    assert (m.n_layers, m.n_heads, m.config.hidden_size, m.config.num_pooler_layers) == (24, 16, 1024, 3)
    assert (m.num_frames, m.image_size, m.grid, m.n_tokens, m.has_cls) == (16, 256, (8, 16, 16), 2048, False)
    assert len(m.id2label) == 174 and m.target_index == 0 and m.target_label == "class 0"
    x = m.preprocess(render_clip("bowling", 0, "strike", num_frames=32, size=320))
    assert x.shape == (1, 16, 3, 256, 256)
    with torch.inference_mode():
        assert m.adapter(m.model).embed(x).shape == (1, 2048, 1024)


def test_paper_profile_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hf download google/vivit-b-16x2-kinetics400"):
        load_model("paper")


def test_a_checkpoint_names_its_own_analysed_class():
    """The positive control has no 'bowling' class: the generic default target means the class its
    config.json names (``default_target``), while any explicit class name or index still wins."""
    from utils.labels import resolve_target

    id2label = {0: "bowling strike", 1: "bowling gutter", 2: "juggling"}
    assert resolve_target(id2label, "bowling", default="bowling strike") == 0
    assert resolve_target(id2label, None, default="bowling gutter") == 1
    assert resolve_target(id2label, "bowling gutter", default="bowling strike") == 1
    assert resolve_target(id2label, 2, default="bowling strike") == 2
    with pytest.raises(ModelLoadError, match="no class of that name"):
        resolve_target(id2label, "bowling")  # without a default the generic name does not resolve
    assert resolve_target({0: "bowling", 1: "x"}, "bowling", default="x") == 0  # a real 'bowling' class wins
