"""Train a toy video classifier on the synthetic world (``make toy-model``).

Three architectures share one recipe (world, clip seeds, torch seed, optimiser, batch):
``vivit`` (the toy ViViT, ``data/models/toy-vivit``), ``timesformer`` and ``videomae``
(``data/models/toy-<arch>``; configs and processors in the adapters, ``utils/arch/<arch>.py``).

The model learns only to name the action of a clip (``utils.synthetic.ACTIONS``). Bowling
clips mix the outcomes strike / gutter / partial evenly; the outcome is never a label.

The positive control, ``outcome`` (``data/models/toy-outcome``), is the same ViViT, recipe and
clip seeds with the outcome made part of the task: bowling is split into the classes
``bowling strike`` and ``bowling gutter`` (``OUTCOME_CLASSES``). Partial outcomes (some pins
down) are left out of its training set: a partial is neither the success nor the failure the
paper contrasts, and labelling it either way would teach a pin-count threshold rather than the
strike/gutter contrast the analyses probe. Every training bowling seed is rendered once as a
strike and once as a gutter ball (``Arch.paired_outcomes``), so the outcome is the only cue
(one outcome per seed let the model memorise seeds and stay at chance on held-out clips).
In this model an outcome circuit exists by construction.
Train, validation and test clips come from disjoint seed ranges (``SEEDS``), so every
held-out number is measured on clips the model never saw.

    python -m utils.train                      # toy ViViT -> data/models/toy-vivit
    python -m utils.train --arch timesformer   # -> data/models/toy-timesformer
    python -m utils.train --arch videomae      # -> data/models/toy-videomae
    python -m utils.train --arch outcome       # the positive control -> data/models/toy-outcome
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

from utils import paths, toy_models
from utils.arch import ADAPTERS, adapter_for
from utils.synthetic import ACTIONS, OUTCOMES, render_clip
from utils.toy_models import fast_preprocess

DEFAULT_RECIPE = "vivit"  # what `make toy-model` trains without ARCH= (the Makefile's default)
SEED = 0  # torch seed for initialisation and batch order
SEEDS = {  # clip seed ranges: disjoint by construction
    "train": range(0, 250),  # 250 clips per action
    "val": range(100_000, 100_040),  # 40 per action, for the training curve
    "test": range(200_000, 200_100),  # 100 per action, reported in the model card
}
STEPS = 700  # optimiser steps (toy ViViT; see Arch.steps for the others)
BATCH = 32  # clips per step
LR = 1e-3  # peak learning rate (AdamW), cosine decay after WARMUP steps
WARMUP = 50
WEIGHT_DECAY = 0.05
EVAL_EVERY = 50  # steps between validation passes
FINE_TUNE_FROM_BLOCK = 8  # the positive control trains blocks 8-11 of toy-vivit (and its final LayerNorm, head)
FINE_TUNE_STEPS = 600
SEED_SPREAD = (1, 2)  # torch seeds of the seed-spread toys (toy-seed1, toy-seed2)
OUTCOME_CLASSES = ("bowling strike", "bowling gutter", *ACTIONS[1:])  # the positive control's classes
assert ACTIONS[0] == "bowling"


def action_label(action: str, outcome: str | None) -> int:
    """The action-only task: the class is the action, whatever the outcome."""
    return ACTIONS.index(action)


def outcome_label(action: str, outcome: str | None) -> int:
    """The positive control's task: bowling strike (0), bowling gutter (1), then the other actions."""
    if action == "bowling":
        return OUTCOME_CLASSES.index(f"bowling {outcome}")
    return OUTCOME_CLASSES.index(action)


@dataclass(frozen=True)
class Arch:
    """What differs between the toy architectures; everything else is the shared recipe."""

    name: str  # "vivit", "timesformer", "videomae"
    title: str  # for figure titles
    model_class: type
    config: Callable  # (num_labels, id2label) -> config
    processor: Callable  # () -> image processor saved with the checkpoint
    preprocess: Callable  # uint8 (batch, frame, row, col, 3) -> pixel_values, as the processor
    steps: int  # default optimiser steps
    sdpa: bool  # train with SDPA attention (the model supports it); analyses use eager
    intro: str  # model card: what the model is, the comparison table and the preprocessing
    steps_note: str = ""  # model card: why the step count differs from the toy ViViT's
    log_extra: dict = field(default_factory=dict)  # extra training_log.json fields
    classes: tuple[str, ...] = ACTIONS  # class names, index order
    label_of: Callable = action_label  # (action, outcome) -> class index
    train_outcomes: tuple[str, ...] = OUTCOMES  # the bowling outcomes of the training set
    paired_outcomes: bool = False  # render every bowling seed once per outcome (matched pairs in training)
    config_extra: dict = field(default_factory=dict)  # extra config.json fields
    seed: int = SEED  # torch seed (initialisation and batch order); the clip seeds never change
    init_from: str | None = None  # another recipe whose trained model this one starts from (fine-tuning)
    train_from_block: int = 0  # blocks below it stay frozen (their residual is computed once, then cached)
    paired_batches: bool = False  # half of each batch: matched pairs (both outcomes of a seed), half the rest

    @property
    def out_dir(self) -> Path:
        return paths.MODELS_DIR / f"toy-{self.name}"  # toy-vivit, toy-outcome, toy-seed1, ...

    def own_class(self, outcome: str) -> int:
        """The class a bowling clip of ``outcome`` belongs to."""
        return self.label_of("bowling", outcome)

    @property
    def retrain(self) -> str:
        return "make toy-model" if self.name == DEFAULT_RECIPE else f"make toy-model ARCH={self.name}"


def _vivit_intro() -> str:
    return f"""A 12-layer, 12-head ViViT (`VivitForVideoClassification`, transformers) trained from scratch
on this repository's synthetic world (`utils/synthetic.py`) to name the action of a clip.
It stands in for `google/vivit-b-16x2-kinetics400` so that every notebook runs offline on a
CPU, with results that are real findings about a real trained model.

| | toy-vivit | ViViT-B (paper) |
|---|---|---|
| layers x heads | 12 x 12 | 12 x 12 |
| hidden / MLP width | 96 / 384 (d_head 8) | 768 / 3072 (d_head 64) |
| input | 16 frames x 96 x 96 | 32 frames x 224 x 224 |
| tubelet | 2 x 16 x 16 | 2 x 16 x 16 |
| tokens | 8 x 6 x 6 = 288 patches + CLS = 289 | 16 x 14 x 14 = 3136 + CLS = 3137 |
| classes | {len(ACTIONS)} ({", ".join(ACTIONS)}) | 400 (Kinetics-400) |

Preprocessing (`preprocessor_config.json`, a `VivitImageProcessor`): resize to 96 x 96,
then `x / 127.5 - 1`."""


_NEW_PROCESSOR = """Preprocessing (`preprocessor_config.json`, a `VideoMAEImageProcessor` as the hub checkpoint
has): resize to 96 x 96 (a no-op on the synthetic clips), no crop, `x / 255` then normalise
with mean 0.5 and std 0.5, i.e. `x / 127.5 - 1` as the toy ViViT. `utils.toy_models.fast_preprocess`
is the training-time equivalent (`tests/test_toy_models.py` checks they agree)."""


def _outcome_intro() -> str:
    return f"""The positive control: the toy ViViT with the outcome made part of its task. Bowling is split
into two classes, `bowling strike` and `bowling gutter`, so the model must tell the outcomes
apart: an outcome circuit exists in it by construction, and a method that finds nothing here
has no verdict to give on the action-only models. The natural metric is the logit difference
between the two bowling classes.

It is `toy-vivit` fine-tuned: the embeddings and blocks 0-{FINE_TUNE_FROM_BLOCK - 1} are `toy-vivit`'s, unchanged;
blocks {FINE_TUNE_FROM_BLOCK}-11, the final LayerNorm and the head are trained on the outcome task (clip seeds,
optimiser, learning-rate schedule and batch size as `toy-vivit`). The head starts from `toy-vivit`'s:
every action keeps its row, and the strike and gutter rows start as the bowling row plus and minus
a random vector of the same norm. The two models therefore differ only where the outcome
circuit was built, which makes them a close comparison.

Why not from scratch: the same recipe trained from scratch (700 steps) put 16% of held-out
strikes and 88% of gutter balls into their own class, and the shorter variants we could afford
on 2 CPU cores (50-200 steps each: paired batches from scratch, fine-tuning the whole network
from `toy-vivit`, with or without an auxiliary loss on every token) stayed at chance on
validation pairs. Our reading, not a proof: a strike and a gutter clip of one seed are
identical until frame 6 and then differ in a handful of pin-deck tokens; while the network
cannot tell them apart, the gradient that would teach it is the difference between the two
rows of the head times a CLS difference diluted over 288 tokens, and both start near zero.
Trained on `toy-vivit`'s frozen lower blocks, where the pin tokens already differ, the top
blocks learned to gather them within a few hundred steps.

Classes ({len(OUTCOME_CLASSES)}): {", ".join(OUTCOME_CLASSES)}. Partial outcomes (some pins
down) are left out of training: a partial is neither the success nor the failure the paper
contrasts, and labelling it either way would teach a pin-count threshold instead of the
strike/gutter contrast. Every bowling seed of the training set is rendered as a strike *and* as
a gutter ball (a matched pair, like the analysed pairs), and half of every batch is 8 such pairs
(the other half: the other actions): a first recipe that gave each seed one outcome let the
model memorise seeds (training loss 0.06) and stay at chance on held-out clips."""


_FEWER_STEPS = (
    "{steps} steps instead of the toy ViViT's 700 (all else equal, the cosine schedule spans\n"
    "the shorter run): 700 steps take hours on the 2 shared CPU cores this was trained on, and\n"
    "the task is easy (the toy ViViT was at 98% validation accuracy by step 150); the held-out\n"
    "bar is >= 95% overall and >= 95% of strike and of gutter clips named bowling."
)

def _new_arch(name: str) -> Arch:
    """The recipe of an architecture's toy model: the toy ViViT's data and schedule, the facts
    (HF class, config, processor, card, steps) from its adapter (``utils/arch/<name>.py``)."""
    adapter = ADAPTERS[name]
    return Arch(
        name=name,
        title=adapter.title,
        model_class=adapter.hf_class,
        config=adapter.toy_config,
        processor=adapter.toy_processor,
        preprocess=partial(toy_models.fast_preprocess, arch=name),
        steps=adapter.toy_steps,
        sdpa=adapter.toy_train_sdpa,
        intro=f"{adapter.toy_card(ACTIONS)}\n\n{_NEW_PROCESSOR}",
        steps_note=_FEWER_STEPS,
        log_extra={"arch": name, "frames": toy_models.frame_indices(name).tolist()},
    )


ARCHS = {
    "vivit": Arch(
        name="vivit",
        title="ViViT",
        model_class=ADAPTERS["vivit"].hf_class,
        config=ADAPTERS["vivit"].toy_config,
        processor=ADAPTERS["vivit"].toy_processor,
        preprocess=fast_preprocess,
        steps=STEPS,
        sdpa=True,
        intro=_vivit_intro(),
    ),
}
ARCHS["outcome"] = replace(  # the positive control: the toy ViViT's recipe, the outcome as part of the task
    ARCHS["vivit"],
    name="outcome",
    title="ViViT (outcome task, positive control)",
    intro=_outcome_intro(),
    classes=OUTCOME_CLASSES,
    label_of=outcome_label,
    train_outcomes=("strike", "gutter"),
    paired_outcomes=True,
    init_from="vivit",
    train_from_block=FINE_TUNE_FROM_BLOCK,
    paired_batches=True,
    steps=FINE_TUNE_STEPS,
    steps_note="{steps} steps of fine-tuning from `toy-vivit` (blocks "
               f"{FINE_TUNE_FROM_BLOCK}-11, the final LayerNorm and the head; see the introduction).",
    config_extra={"default_target": "bowling strike", "contrast_class": "bowling gutter"},
    log_extra={"task": "outcome: bowling strike vs bowling gutter"},
)
for _seed in SEED_SPREAD:  # the seed spread: the toy ViViT with another torch seed, at the others' 250 steps
    ARCHS[f"seed{_seed}"] = replace(
        ARCHS["vivit"], name=f"seed{_seed}", title=f"ViViT (torch seed {_seed})", seed=_seed, steps=250,
        intro=_vivit_intro() + f"""

This is a **seed-spread** model: the toy ViViT's recipe with torch seed {_seed} (initialisation and batch
order; the clips are the same) and 250 steps, as the TimeSformer and VideoMAE toys. Notebook 09
asks whether each finding of `toy` holds on it (README's "other seeds" column).""",
        steps_note="250 steps, as the TimeSformer and VideoMAE toys, so that notebook 07 can also compare equal "
                   "training.")
ARCHS |= {name: _new_arch(name) for name, a in ADAPTERS.items() if a.toy_profile != "toy"}  # one per architecture


def _render(job):
    action, seed, outcome = job
    return render_clip(action, seed, outcome)


def dataset(split: str, outcomes=OUTCOMES, label_of: Callable = action_label, paired: bool = False
            ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Render one split: clips uint8 (clip, frame, row, col, 3), labels (``label_of``), bowling outcomes.
    Bowling seeds cycle through ``outcomes``; with ``paired`` every bowling seed is rendered once
    per outcome instead (matched pairs: the outcome is the only thing that tells the clips apart)."""
    jobs = []
    for _label, action in enumerate(ACTIONS):
        for i, seed in enumerate(SEEDS[split]):
            if action == "bowling" and paired:
                jobs += [(action, seed, o) for o in outcomes]
                continue
            outcome = outcomes[i % len(outcomes)] if action == "bowling" else None
            jobs.append((action, seed, outcome))
    with Pool(2) as pool:
        clips = pool.map(_render, jobs, chunksize=16)
    labels = np.array([label_of(a, o) for a, _, o in jobs])
    return np.stack(clips), labels, [o for _, _, o in jobs]


@torch.inference_mode()
def predict(model, clips: np.ndarray, batch_size: int = 64, preprocess=fast_preprocess) -> np.ndarray:
    model.eval()
    preds = []
    for i in range(0, len(clips), batch_size):
        x = preprocess(torch.from_numpy(clips[i : i + batch_size]))
        preds.append(model(**{model.main_input_name: x}).logits.argmax(-1).numpy())
    return np.concatenate(preds)


def held_out_report(model, clips, labels, outcomes, preprocess=fast_preprocess, spec: Arch | None = None) -> dict:
    """Accuracy overall, per class, and the share of bowling clips of each outcome put into
    their own class (``bowling`` for the action-only models, ``bowling <outcome>`` for the
    positive control)."""
    spec = spec or ARCHS["vivit"]
    pred = predict(model, clips, preprocess=preprocess)
    report = {"accuracy": float((pred == labels).mean()), "n": int(len(labels))}
    report["per_action"] = {
        a: float((pred[labels == k] == k).mean()) for k, a in enumerate(spec.classes) if (labels == k).any()
    }
    outcomes = np.array([o or "" for o in outcomes])
    report["bowling_by_outcome"] = {
        o: float((pred[outcomes == o] == spec.own_class(o)).mean())
        for o in OUTCOMES if (outcomes == o).any() and o in spec.train_outcomes
    }
    return report


def train(
    out_dir: Path,
    steps: int = STEPS,
    arch: str = "vivit",
    threads: int | None = None,
    state_file: Path | None = None,
) -> dict:
    """Train one toy model into ``out_dir``. With ``state_file``, the run saves its state
    (weights, optimiser, batch order, curve) there at every validation pass and, if the file
    exists, resumes from it with the same batches; the file is removed once the model is saved."""
    spec = ARCHS[arch]
    torch.manual_seed(spec.seed)
    torch.set_num_threads(threads or max(1, torch.get_num_threads()))
    t0 = time.time()
    print("rendering clips ...", flush=True)
    x_train, y_train, _ = dataset("train", spec.train_outcomes, spec.label_of, spec.paired_outcomes)
    x_val, y_val, o_val = dataset("val", spec.train_outcomes, spec.label_of, spec.paired_outcomes)
    print(f"  {len(x_train)} train, {len(x_val)} val clips in {time.time() - t0:.0f}s", flush=True)

    config = spec.config(len(spec.classes), dict(enumerate(spec.classes)))
    for key, value in spec.config_extra.items():
        setattr(config, key, value)
    if spec.sdpa:
        config._attn_implementation = "sdpa"  # fast for training; analyses use eager
    model = initial_model(spec, config)
    n_params = sum(p.numel() for p in model.parameters())
    trained = freeze_below(model, spec.train_from_block)
    print(f"{spec.model_class.__name__}: {n_params:,} parameters ({sum(p.numel() for p in trained):,} trained), "
          f"{steps} steps", flush=True)
    opt = torch.optim.AdamW(trained, lr=LR, weight_decay=WEIGHT_DECAY)
    cached = None
    if spec.train_from_block:  # the frozen blocks' output never changes: compute it once
        print(f"caching the residual stream before block {spec.train_from_block} ...", flush=True)
        cached = frozen_residual(model, x_train, spec.train_from_block, spec.preprocess)
    pairs, others = _pair_index(spec, y_train) if spec.paired_batches else (None, None)

    def lr_at(step):
        if step < WARMUP:
            return LR * (step + 1) / WARMUP
        return LR * 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / max(steps - WARMUP, 1)))

    gen = torch.Generator().manual_seed(spec.seed)
    order = torch.randperm(len(x_train), generator=gen)
    pos, curve, t_train, start, done_seconds = 0, [], time.time(), 0, 0.0
    if state_file is not None and state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        if (state["arch"], state["steps"]) != (arch, steps):
            raise ValueError(f"{state_file} is a {state['arch']} run of {state['steps']} steps")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        order, pos, curve, start = state["order"], state["pos"], state["curve"], state["step"]
        done_seconds = state["seconds"]
        print(f"resumed from {state_file} at step {start}", flush=True)
    for step in range(start, steps):
        if pairs is not None:  # half the batch matched pairs, so each pair's outcome is the only contrast
            chosen = pairs[torch.randperm(len(pairs), generator=gen)[: BATCH // 4]].reshape(-1)
            rest = others[torch.randperm(len(others), generator=gen)[: BATCH - len(chosen)]]
            idx = torch.cat([chosen, rest]).numpy()
        else:
            if pos + BATCH > len(order):
                order, pos = torch.randperm(len(x_train), generator=gen), 0
            idx = order[pos : pos + BATCH].numpy()
            pos += BATCH
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        labels = torch.from_numpy(y_train[idx])
        if cached is not None:
            loss = torch.nn.functional.cross_entropy(top_logits(model, cached[idx], spec.train_from_block), labels)
        else:
            loss = model(**{model.main_input_name: spec.preprocess(torch.from_numpy(x_train[idx]))}, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        if (step + 1) % EVAL_EVERY == 0 or step == 0 or step + 1 == steps:
            val = held_out_report(model, x_val, y_val, o_val, spec.preprocess, spec)
            curve.append({"step": step + 1, "train_loss": loss.item(), "val_accuracy": val["accuracy"]})
            print(
                f"step {step + 1:4d}/{steps}  loss {loss.item():.4f}  val acc {val['accuracy']:.3f}"
                f"  ({done_seconds + time.time() - t_train:.0f}s)",
                flush=True,
            )
            if state_file is not None and step + 1 < steps:
                state = {
                    "arch": arch, "steps": steps, "step": step + 1, "model": model.state_dict(),
                    "opt": opt.state_dict(), "gen": gen.get_state(), "order": order, "pos": pos,
                    "curve": curve, "seconds": done_seconds + time.time() - t_train,
                }
                torch.save(state, state_file.with_name(state_file.name + ".part"))
                state_file.with_name(state_file.name + ".part").replace(state_file)
    train_seconds = done_seconds + time.time() - t_train

    print("evaluating on the held-out test seeds ...", flush=True)
    x_test, y_test, o_test = dataset("test", ("strike", "gutter"), spec.label_of)
    test = held_out_report(model, x_test, y_test, o_test, spec.preprocess, spec)
    print(json.dumps(test, indent=1), flush=True)

    model.config._attn_implementation = "eager"
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    spec.processor().save_pretrained(tmp)
    log = {
        **spec.log_extra,
        "seed": spec.seed,
        "seeds": {k: [v.start, v.stop] for k, v in SEEDS.items()},
        "steps": steps,
        "batch": BATCH,
        "lr": LR,
        "warmup": WARMUP,
        "weight_decay": WEIGHT_DECAY,
        **({"init_from": ARCHS[spec.init_from].out_dir.name, "train_from_block": spec.train_from_block}
           if spec.init_from else {}),
        **({"paired_batches": True} if spec.paired_batches else {}),
        "train_seconds": round(train_seconds),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        "curve": curve,
        "test": test,
    }
    log["model_class"] = spec.model_class.__name__
    log["num_parameters"] = n_params
    (tmp / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    _curve_figure(curve, tmp / "training_curve.png", spec.title)
    (tmp / "README.md").write_text(model_card(log, arch))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    print(f"saved to {out_dir} ({time.time() - t0:.0f}s in all)", flush=True)
    return log


def initial_model(spec: Arch, config):
    """A fresh model of ``spec``, or (``spec.init_from``) the trained model of another recipe with
    a new head: each class of the base model keeps its row; a base class split in two (``bowling``
    -> ``bowling strike``, ``bowling gutter``) gives both halves its row, plus and minus a random
    vector of the row's norm. Equal rows would give the two classes equal logits for every clip,
    and the gradient that could teach the network to tell them apart is (p_strike - p_gutter)
    times the rows' difference: zero."""
    if spec.init_from is None:
        return spec.model_class(config)
    base_spec = ARCHS[spec.init_from]
    base_dir = base_spec.out_dir
    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"the {spec.name!r} recipe fine-tunes {base_dir}, which is missing: train it first "
                                f"(`{base_spec.retrain}`) or restore data/models from git")
    base = spec.model_class.from_pretrained(base_dir, attn_implementation=config._attn_implementation)
    model = spec.model_class(config)
    weights = {k: v for k, v in base.state_dict().items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ValueError(f"{base_dir} does not match the {spec.name!r} config: missing {missing}, "
                         f"unexpected {unexpected}")
    old, new = base.classifier, model.classifier
    gen = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for i, name in enumerate(spec.classes):
            parent = name if name in base_spec.classes else name.split(" ")[0]
            j = base_spec.classes.index(parent)  # ValueError: a class with no parent in the base model
            siblings = [c for c in spec.classes if c.split(" ")[0] == parent and c != parent]
            new.weight[i] = old.weight[j]
            new.bias[i] = old.bias[j]
            if siblings:
                if len(siblings) != 2:
                    raise ValueError(f"{parent!r} splits into {siblings}: only a split in two is supported")
                if i == spec.classes.index(siblings[0]):
                    delta = torch.randn(old.weight.shape[1], generator=gen)
                    delta *= old.weight[j].norm() / delta.norm()
                new.weight[i] += delta if name == siblings[0] else -delta
    return model


def freeze_below(model, block: int) -> list[torch.nn.Parameter]:
    """Freeze the embeddings and blocks ``0 .. block-1`` (nothing for ``block = 0``); returns the
    parameters left to train. The modules come from the architecture's adapter."""
    if block:
        trunk = adapter_for(model)
        for module in (trunk.embeddings, *trunk.blocks[:block]):
            module.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def _block(layer, h):
    out = layer(h)
    return out[0] if isinstance(out, tuple) else out


@torch.inference_mode()
def frozen_residual(model, clips: np.ndarray, block: int, preprocess=fast_preprocess, batch_size: int = 50
                    ) -> torch.Tensor:
    """The residual stream entering ``block`` (embeddings, then the blocks below it) for every
    clip (uint8 ``(clip, frame, row, col, 3)``)."""
    trunk = adapter_for(model)
    model.eval()
    out = []
    for i in range(0, len(clips), batch_size):
        h = trunk.embed(preprocess(torch.from_numpy(clips[i : i + batch_size])))
        for layer in trunk.blocks[:block]:
            h = _block(layer, h)
        out.append(h)
    return torch.cat(out).clone()


def top_logits(model, residual: torch.Tensor, block: int) -> torch.Tensor:
    """The logits from the residual stream entering ``block``: the blocks from it on, then the
    final norm, readout and classifier (``Adapter.logits``), as the HF model computes them."""
    trunk = adapter_for(model)
    h = residual
    for layer in trunk.blocks[block:]:
        h = _block(layer, h)
    return trunk.logits(h)


def _pair_index(spec: Arch, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-set indices of the matched pairs (rows: one seed's clips, in ``train_outcomes``
    order, as ``dataset(paired=True)`` renders them) and of every other clip."""
    own = [spec.own_class(o) for o in spec.train_outcomes]
    bowling = np.flatnonzero(np.isin(labels, own))
    pairs = bowling.reshape(-1, len(own))
    if not (labels[pairs] == np.array(own)).all():
        raise ValueError("the bowling clips are not in matched pairs: render the set with dataset(paired=True)")
    return torch.from_numpy(pairs), torch.from_numpy(np.flatnonzero(~np.isin(labels, own)))


def _curve_figure(curve, path, title: str = "ViViT"):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    steps = [c["step"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(steps, [c["train_loss"] for c in curve], color="tab:gray", label="train loss (batch)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy loss")
    ax2 = ax.twinx()
    ax2.plot(steps, [100 * c["val_accuracy"] for c in curve], color="tab:blue", label="val accuracy")
    ax2.set_ylabel("validation accuracy (%)")
    ax2.set_ylim(0, 101)
    ax.set_title(f"Toy {title} training curve")
    fig.legend(loc="center right", bbox_to_anchor=(0.85, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_card(log: dict, arch: str = "vivit") -> str:
    spec = ARCHS[arch]
    test = log["test"]
    rows = "\n".join(f"| {a} | {100 * v:.1f} |" for a, v in test["per_action"].items())
    outc = "\n".join(
        f"| {o} | {100 * v:.1f} |" for o, v in test["bowling_by_outcome"].items()
    )
    s = log["seeds"]
    params = f"\n\n{log['num_parameters']:,} parameters." if "num_parameters" in log else ""
    steps_note = ("\n\n" + spec.steps_note.format(steps=log["steps"])) if spec.steps_note else ""
    if spec.label_of is action_label:
        recipe = ("- Bowling clips in training cycle through the outcomes strike / gutter / partial (one third\n"
                  "  each); the outcome is never a label or an input.")
        own, unit = "classified as bowling (%)", "action"
    else:
        recipe = ("- Every bowling seed of training is rendered once per outcome "
                  f"({', '.join(spec.train_outcomes)}: matched pairs),\n  labelled by outcome; partial outcomes are "
                  "left out. Alternating outcomes over seeds (one outcome per seed)\n  let the model memorise each "
                  "seed's lane and camera: it fit the training set and stayed at chance\n  on held-out strike and "
                  "gutter clips.")
        own, unit = "classified into its own class (%)", "class"
    return f"""# {spec.out_dir.name}

{spec.intro}

## Data recipe
- Actions: {", ".join(ACTIONS)}; every clip is `render_clip(action, seed)`.
{recipe}
- Seeds: train {s["train"][0]}..{s["train"][1] - 1} ({s["train"][1] - s["train"][0]} clips per action),
  validation {s["val"][0]}..{s["val"][1] - 1}, test {s["test"][0]}..{s["test"][1] - 1}: disjoint ranges.

## Training
AdamW, peak learning rate {log["lr"]}, {log["warmup"]} warm-up steps then cosine decay,
weight decay {log["weight_decay"]}, batch {log["batch"]}, {log["steps"]} steps, gradient
clipping at 1.0, no dropout, torch seed {log["seed"]}. Training took {log["train_seconds"]} s
on {log["machine"]}. Retrain with `{spec.retrain}`.{params}{steps_note}

![training curve](training_curve.png)

## Held-out accuracy (test seeds, never seen in training)
Overall: **{100 * test["accuracy"]:.1f}%** of {test["n"]} clips (bowling clips: half strike, half gutter).

| {unit} | accuracy (%) |
|---|---|
{rows}

| bowling outcome | {own} |
|---|---|
{outc}

Training is seeded (torch seed, clip seeds, batch order), so `{spec.retrain}` repeats it;
CPU kernels may differ in the last bits between machines and thread counts, so a retrain
elsewhere can differ slightly. Tolerance we hold a retrain to: held-out metrics within
1 percentage point.
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=tuple(ARCHS), default=DEFAULT_RECIPE, help="recipe (architecture or control)")
    parser.add_argument("--out", type=Path, help="output folder (default data/models/toy-<arch>)")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: the architecture's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--state", type=Path, help="save the run's state here at each validation pass; resume if it exists"
    )
    args = parser.parse_args(argv)
    spec = ARCHS[args.arch]
    train(args.out or spec.out_dir, args.steps or spec.steps, args.arch, args.threads, args.state)


if __name__ == "__main__":
    main()
