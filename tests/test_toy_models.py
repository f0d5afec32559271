"""The toy TimeSformer, VideoMAE and V-JEPA 2 (``utils.toy_models``, trained by ``utils.train``)."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

from utils import paths
from utils.arch import ADAPTERS
from utils.synthetic import ACTIONS, render_clip
from utils.toy_models import fast_preprocess, frame_indices, sample_frame_indices
from utils.train import ARCHS, SEED_SPREAD, SEEDS, model_card

FRESH_SEEDS = range(900_000, 900_020)  # never used: training 0..249, val 100000.., test 200000..


def model_dir(arch):
    return paths.MODELS_DIR / f"toy-{arch}"


NEW = ("timesformer", "videomae", "vjepa2")
SHIPPED = list(NEW)  # all shipped under data/models/


@pytest.fixture(scope="module", params=SHIPPED)
def toy(request):
    arch = request.param
    model = ADAPTERS[arch].hf_class.from_pretrained(model_dir(arch), local_files_only=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir(arch), local_files_only=True)
    return arch, model, processor


def test_output_folders_and_vivit_card_unchanged():
    assert ARCHS["vivit"].out_dir == paths.TOY_MODEL_DIR
    assert {a: ARCHS[a].out_dir.name for a in NEW} == {a: f"toy-{a}" for a in NEW}
    # the generalised trainer still writes the shipped toy ViViT's card, byte for byte
    log = json.loads((paths.TOY_MODEL_DIR / "training_log.json").read_text())
    assert model_card(log) == (paths.TOY_MODEL_DIR / "README.md").read_text()


@pytest.mark.parametrize("arch", SHIPPED)
def test_each_card_is_what_the_trainer_writes(arch):
    """An architecture's card comes from its adapter (``toy_card``) and the shared recipe: the
    shipped card is what ``model_card`` writes from the shipped training log, byte for byte."""
    log = json.loads((model_dir(arch) / "training_log.json").read_text())
    assert model_card(log, arch) == (model_dir(arch) / "README.md").read_text()


def test_frame_indices():
    assert frame_indices("timesformer").tolist() == list(range(0, 16, 2))
    assert frame_indices("videomae").tolist() == list(range(16))
    assert frame_indices("vjepa2").tolist() == list(range(16))
    assert frame_indices("timesformer", 32).tolist() == list(range(0, 32, 4))
    assert frame_indices("vivit").tolist() == list(range(16))  # the toy ViViT reads every frame
    with pytest.raises(ValueError, match="unknown"):
        frame_indices("resnet")
    assert sample_frame_indices(16, 8).tolist() == list(range(0, 16, 2))  # every k-th
    assert sample_frame_indices(8, 8).tolist() == list(range(8))
    assert sample_frame_indices(20, 8).tolist() == np.linspace(0, 19, 8).round().astype(int).tolist()


@pytest.mark.parametrize("arch", SHIPPED)
def test_checkpoint_is_small_and_documented(arch):
    d = model_dir(arch)
    size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
    assert size < 10 * 2**20
    card = (d / "README.md").read_text()
    assert "Held-out accuracy" in card and (d / "training_curve.png").is_file()
    log = json.loads((d / "training_log.json").read_text())
    assert log["arch"] == arch and log["seeds"]["train"] == [SEEDS["train"].start, SEEDS["train"].stop]
    test = log["test"]
    assert test["accuracy"] >= 0.95 and min(test["bowling_by_outcome"].values()) >= 0.95


def test_toy_model_facts(toy):
    arch, model, processor = toy
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size) == (12, 12, 96)
    if arch == "vjepa2":  # its own names: MLP ratio, crop size; no hidden dropout
        assert cfg.mlp_ratio == 4 and cfg.crop_size == 96 and cfg.patch_size == 16
        assert cfg.num_pooler_layers == 3 and cfg.attention_probs_dropout_prob == 0
    else:
        assert cfg.intermediate_size == 384 and cfg.image_size == 96 and cfg.patch_size == 16
        assert cfg.hidden_dropout_prob == 0 and cfg.attention_probs_dropout_prob == 0
    assert list(cfg.id2label.values()) == list(ACTIONS) and cfg.id2label[0] == "bowling"
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    assert not model.training
    x = fast_preprocess(torch.from_numpy(render_clip("curling", 5))[None], arch)
    with torch.inference_mode():
        if arch == "vjepa2":
            hidden = model.vjepa2(pixel_values_videos=x, skip_predictor=True).last_hidden_state
        else:
            base = model.timesformer if arch == "timesformer" else model.videomae
            hidden = base(pixel_values=x).last_hidden_state
    if arch == "timesformer":
        assert cfg.num_frames == 8 and cfg.attention_type == "divided_space_time"
        assert x.shape == (1, 8, 3, 96, 96)
        assert hidden.shape == (1, 1 + 8 * 36, 96)  # CLS + 8 frames x 6 x 6 patches
    elif arch == "vjepa2":
        assert cfg.frames_per_clip == 16 and cfg.tubelet_size == 2
        assert x.shape == (1, 16, 3, 96, 96)
        assert hidden.shape == (1, 8 * 6 * 6, 96)  # no CLS
    else:
        assert cfg.num_frames == 16 and cfg.tubelet_size == 2
        assert cfg.use_mean_pooling and cfg.qv_bias and model.fc_norm is not None
        assert x.shape == (1, 16, 3, 96, 96)
        assert hidden.shape == (1, 8 * 6 * 6, 96)  # no CLS


def test_processor_equals_training_fast_path(toy):
    arch, _, processor = toy
    assert type(processor).__name__.startswith("VideoMAEImageProcessor")
    clip = render_clip("juggling", 3)
    frames = clip[frame_indices(arch)]
    out = processor(list(frames), return_tensors="pt")["pixel_values"]
    fast = fast_preprocess(torch.from_numpy(clip)[None], arch)
    torch.testing.assert_close(out, fast)
    exact = torch.from_numpy(frames).double().permute(0, 3, 1, 2)[None] / 127.5 - 1
    torch.testing.assert_close(out.double(), exact, atol=1e-6, rtol=0)
    black = np.zeros((len(frames), 96, 96, 3), np.uint8)
    assert processor(list(black), return_tensors="pt")["pixel_values"].min() == -1
    assert processor(list(black + 255), return_tensors="pt")["pixel_values"].max() == 1


@pytest.mark.slow
def test_fresh_held_out_clips_are_classified(toy):
    """Seeds never used in training: >= 95% overall and of strike and of gutter clips named
    bowling (the issue's criteria), and no action collapsed: each >= 80% of its 20 clips (one
    clip is 5 points; toy-videomae's weakest action, pendulum, is 93% on its 600-clip test set
    and 85% here)."""
    arch, model, processor = toy
    _check_fresh_clips(arch, model, processor)


def _check_fresh_clips(arch, model, processor):
    hits = {}
    with torch.inference_mode():
        for action in ACTIONS:
            for outcome in ("strike", "gutter") if action == "bowling" else (None,):
                clips = [render_clip(action, s, outcome) for s in FRESH_SEEDS]
                x = torch.cat(
                    [processor(list(c[frame_indices(arch)]), return_tensors="pt")["pixel_values"] for c in clips]
                )
                pred = model(**{model.main_input_name: x}).logits.argmax(-1)
                hits[(action, outcome)] = (pred == ACTIONS.index(action)).float().mean().item()
    overall = float(np.mean(list(hits.values())))
    assert overall >= 0.95, (arch, hits)
    assert hits[("bowling", "strike")] >= 0.95 and hits[("bowling", "gutter")] >= 0.95, (arch, hits)
    assert min(hits.values()) >= 0.8, (arch, hits)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [f"seed{s}" for s in SEED_SPREAD])
def test_the_seed_spread_toys_are_shipped_and_meet_the_toys_bar(recipe):
    """toy-seed1 and toy-seed2 (the toy ViViT's recipe with other torch seeds, 250 steps) are
    small, documented, trained as their recipe says, and pass the other toys' bar on their card's
    test clips and on fresh seeds."""
    from transformers import VivitForVideoClassification

    spec = ARCHS[recipe]
    d = spec.out_dir
    assert sum(f.stat().st_size for f in d.iterdir() if f.is_file()) < 10 * 2**20
    assert (d / "training_curve.png").is_file() and "Held-out accuracy" in (d / "README.md").read_text()
    log = json.loads((d / "training_log.json").read_text())
    assert (log["seed"], log["steps"]) == (spec.seed, spec.steps)
    assert log["test"]["accuracy"] >= 0.95 and min(log["test"]["bowling_by_outcome"].values()) >= 0.95, log["test"]
    model = VivitForVideoClassification.from_pretrained(d, local_files_only=True).eval()
    _check_fresh_clips("vivit", model, AutoImageProcessor.from_pretrained(d, local_files_only=True))


@pytest.mark.slow
def test_the_positive_control_tells_strike_from_gutter_on_fresh_seeds():
    """toy-outcome (the positive control) puts held-out strike and gutter clips, from seeds it never
    saw, into their own classes (>= 90% each: its card's test clips and these 40 fresh ones), is
    small and documented, names its analysed and contrast classes, and shares toy-vivit's frozen
    blocks bit for bit (it is fine-tuned above them)."""
    from transformers import VivitForVideoClassification

    from utils.train import OUTCOME_CLASSES

    spec = ARCHS["outcome"]
    d = spec.out_dir
    size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
    assert size < 10 * 2**20 and (d / "training_curve.png").is_file()
    log = json.loads((d / "training_log.json").read_text())
    test = log["test"]
    assert test["accuracy"] >= 0.95 and min(test["bowling_by_outcome"].values()) >= 0.9, test
    assert "Held-out accuracy" in (d / "README.md").read_text()
    model = VivitForVideoClassification.from_pretrained(d, local_files_only=True).eval()
    assert list(model.config.id2label.values()) == list(OUTCOME_CLASSES)
    assert model.config.default_target == "bowling strike" and model.config.contrast_class == "bowling gutter"
    base = VivitForVideoClassification.from_pretrained(ARCHS["vivit"].out_dir, local_files_only=True).state_dict()
    frozen = ("vivit.embeddings.", *(f"vivit.layers.{i}." for i in range(log["train_from_block"])))
    mine = model.state_dict()
    shared = [k for k in mine if k.startswith(frozen)]
    assert shared and all(torch.equal(mine[k], base[k]) for k in shared)
    assert not torch.equal(mine["vivit.layernorm.weight"], base["vivit.layernorm.weight"])
    with torch.inference_mode():
        for outcome in ("strike", "gutter"):
            x = torch.cat([fast_preprocess(torch.from_numpy(render_clip("bowling", s, outcome))[None])
                           for s in FRESH_SEEDS])
            share = (model(pixel_values=x).logits.argmax(-1) == spec.own_class(outcome)).float().mean().item()
            assert share >= 0.9, (outcome, share)
