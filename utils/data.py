"""Notebook 00's work: clips -> MP4s, model-ready tensors and a manifest, per profile.

``data/<profile>/`` receives:

* ``clips/*.mp4``       every clip as video (H.264), for people and other tools;
* ``tensors.pt``        ``{"ids": [...], "frames": uint8 (clip, frame, H, W, 3),
                        "pixel_values": float32 (clip, frame, 3, H, W)}`` at model resolution;
* ``manifest.json``     the model, its target class (and where its class names come from),
                        the preprocessing and the pixel range it fed; per clip: id, pair, seed,
                        outcome, source, frame count, the sha256 of its MP4 and of its tensor,
                        and the model's top-5 predictions; per synthetic pair (``pairs``): name,
                        kind, clip ids, seed and ``pixel_difference`` (how far its clips differ).

The ``toy`` and ``paper-shape`` profiles render the synthetic world: the canonical pair
(seed ``CANONICAL_SEED``, held out from every split), ``n_pairs`` more matched pairs, unmatched
pairs and *null pairs* (``null{i:03d}_a`` / ``_b``: two strikes of seed ``PAIR_SEED_BASE + i``
whose balls take different paths, ``utils.synthetic.render_null_pair``; clip ``_a`` is the
strike clip of matched pair ``i``), in that order.
``paper`` reads the author's two Kinetics
clips (or the user's own) with the notebook's seeded frame sampling; a pair CSV
(``utils.clipsets``) adds your own pairs for notebook 06's statistics, for any profile.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import paths
from utils.clipsets import PairRow
from utils.io import atomic_path, ensure_writable_dir, write_text
from utils.models import LoadedModel
from utils.synthetic import pair_pixel_difference, render_clip, render_null_pair
from utils.video import VideoError, probe_timestamps, read_video, write_video

CANONICAL_SEED = 400_042  # the canonical matched pair: a seed no training, validation, test or pair range uses
CANONICAL_STRIKE, CANONICAL_GUTTER = "canonical_strike", "canonical_gutter"  # clip ids of that pair
PAIR_SEED_BASE = 300_000  # matched pairs use seeds PAIR_SEED_BASE + i: never used in training
UNMATCHED_OFFSET = 50_000  # an unmatched pair: gutter clip from seed + offset
REFERENCE_SEED_BASE = 500_000  # notebook 08's mean-ablation reference clips: seeds REFERENCE_SEED_BASE + i
NULL_OUTCOME = "strike"  # the outcome both clips of a prepared null pair share
PAIR_KINDS = {"canonical": "canonical", "pair": "matched", "unmatched": "unmatched",
              "null": "null"}  # a synthetic pair's name prefix -> its kind
PAPER_DATASET = "chereddysaivreddy/kinetics-400"  # the author's clips on the HF hub
PAPER_FILES = {"strike": "bowling/bowling_plain.mp4", "gutter": "bowling/bowling_gutter.mp4"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Clip:
    id: str
    pair: int  # -1 = canonical pair
    seed: int | None
    outcome: str
    source: str
    frames: np.ndarray  # uint8 (frame, H, W, 3)


def synthetic_specs(n_pairs: int, unmatched: int = 0, null_pairs: int = 0) -> list[tuple[int, int, int, str]]:
    """``(pair, first seed, second seed, name)`` of the canonical pair, ``n_pairs`` matched pairs,
    ``unmatched`` unmatched pairs (an unmatched pair's gutter clip comes from another seed) and
    ``null_pairs`` null pairs (both clips from seed ``PAIR_SEED_BASE + i``, the seed of matched
    pair ``i``), numbered in that order. No seed lies in a range ``utils.train.SEEDS`` uses
    (``tests/test_data.py`` checks it)."""
    specs = [(-1, CANONICAL_SEED, CANONICAL_SEED, "canonical")]
    specs += [(i, PAIR_SEED_BASE + i, PAIR_SEED_BASE + i, f"pair{i:03d}") for i in range(n_pairs)]
    specs += [(n_pairs + i, PAIR_SEED_BASE + i, PAIR_SEED_BASE + i + UNMATCHED_OFFSET,
               f"unmatched{i:03d}") for i in range(unmatched)]
    specs += [(n_pairs + unmatched + i, PAIR_SEED_BASE + i, PAIR_SEED_BASE + i, f"null{i:03d}")
              for i in range(null_pairs)]
    return specs


def reference_clips(loaded: LoadedModel, n: int) -> list[Clip]:
    """``n`` bowling clips apart from every analysed pair and every training split (seeds
    ``REFERENCE_SEED_BASE + i``, strike for even ``i`` and gutter for odd): the reference set of
    mean ablation (notebook 08). Rendered in memory, not written to the data folder."""
    size, T = loaded.image_size, loaded.num_frames
    clips = []
    for i in range(n):
        seed, outcome = REFERENCE_SEED_BASE + i, ("strike", "gutter")[i % 2]
        clips.append(Clip(f"reference{i:03d}_{outcome}", -2, seed, outcome,
                          f"synthetic: render_clip('bowling', {seed}, '{outcome}')",
                          render_clip("bowling", seed, outcome, num_frames=T, size=size)))
    return clips


def is_synthetic(manifest: dict) -> bool:
    """Whether every clip of a prepared data folder was rendered from the synthetic world."""
    return bool(manifest["clips"]) and all(c["source"].startswith("synthetic:") for c in manifest["clips"])


def pair_kind(name: str) -> str:
    """The kind of a synthetic pair from its name (``PAIR_KINDS``): ``pair007`` -> ``matched``."""
    prefix = re.match(r"[a-z]+", name)
    if prefix is None or prefix.group() not in PAIR_KINDS:
        raise ValueError(f"{name!r} is not a synthetic pair name ({', '.join(PAIR_KINDS)} + number)")
    return PAIR_KINDS[prefix.group()]


def synthetic_clips(loaded: LoadedModel, n_pairs: int, unmatched: int = 0, null_pairs: int = 0) -> list[Clip]:
    """The canonical pair, ``n_pairs`` matched pairs, ``unmatched`` unmatched pairs and
    ``null_pairs`` strike null pairs (``null{i:03d}_a`` = ``render_null_pair(seed, "strike")[0]``,
    the strike clip of matched pair ``i``, and ``null{i:03d}_b``, the same seed's other strike)."""
    specs = synthetic_specs(n_pairs, unmatched, null_pairs)
    size, T = loaded.image_size, loaded.num_frames
    clips = []
    for pair, s_seed, g_seed, name in tqdm(specs, desc="rendering pairs", leave=False):
        if pair_kind(name) == "null":
            both = render_null_pair(s_seed, NULL_OUTCOME, num_frames=T, size=size)
            for k, (suffix, frames) in enumerate(zip("ab", both, strict=True)):
                clips.append(Clip(f"{name}_{suffix}", pair, s_seed, NULL_OUTCOME,
                                  f"synthetic: render_null_pair({s_seed}, '{NULL_OUTCOME}')[{k}]", frames))
            continue
        for outcome, seed in (("strike", s_seed), ("gutter", g_seed)):
            frames = render_clip("bowling", seed, outcome, num_frames=T, size=size)
            clips.append(Clip(f"{name}_{outcome}", pair, seed, outcome,
                              f"synthetic: render_clip('bowling', {seed}, '{outcome}')", frames))
    return clips


def synthetic_pair_sizes(clips: list[Clip]) -> list[dict]:
    """Per synthetic pair of ``clips`` (two clips with one ``pair`` number, rendered here): its
    ``name``, ``kind`` (``pair_kind``), ``clips`` (the two ids), ``seed`` (the first clip's) and
    ``pixel_difference`` (``utils.synthetic.pair_pixel_difference`` of the two clips' uint8 frames:
    mean absolute difference in pixel levels 0..255 from the divergence frame on)."""
    by_pair: dict[int, list[Clip]] = {}
    for clip in clips:
        if clip.source.startswith("synthetic"):
            by_pair.setdefault(clip.pair, []).append(clip)
    sizes = []
    for members in by_pair.values():
        if len(members) != 2:
            continue
        a, b = members
        name = a.id.rsplit("_", 1)[0]
        sizes.append({"name": name, "kind": pair_kind(name), "clips": [a.id, b.id], "seed": a.seed,
                      "pixel_difference": round(pair_pixel_difference(a.frames, b.frames), 4)})
    return sizes


def read_clip(loaded: LoadedModel, path: str | Path, sampling: str = "paper", seed: int = 42) -> np.ndarray:
    """Decode ``path`` to the model's frame count with the paper's seeded window (``sampling="paper"``),
    or uniformly in time; a clip too short for the paper's 128-frame window is sampled uniformly."""
    mode = sampling
    if sampling == "paper" and len(probe_timestamps(path)) <= 4 * loaded.num_frames:
        warnings.warn(f"{path} has too few frames for the paper's 128-frame window: sampling "
                      "uniformly instead", stacklevel=2)
        mode = "uniform"
    return read_video(path, loaded.num_frames, sampling=mode, seed=seed)


def paper_clips(loaded: LoadedModel, strike_video: str = "", gutter_video: str = "",
                sampling: str = "paper", seed: int = 42) -> list[Clip]:
    """The real pair: the user's two videos, or the author's clips from the HF hub."""
    videos = {"strike": strike_video, "gutter": gutter_video}
    if bool(strike_video) != bool(gutter_video):
        raise VideoError("pass both STRIKE_VIDEO and GUTTER_VIDEO (or neither, to use the "
                         "author's clips from the HF hub)")
    if not strike_video:
        videos = {k: _download(f) for k, f in PAPER_FILES.items()}
    return [Clip(f"canonical_{outcome}", -1, None, outcome, str(path), read_clip(loaded, path, sampling, seed))
            for outcome, path in videos.items()]


def csv_clips(loaded: LoadedModel, rows: list[PairRow], sampling: str = "paper", seed: int = 42,
              canonical: list[Clip] | None = None) -> list[Clip]:
    """Clips of a pair CSV (``utils.clipsets``): ``pair-<id>_strike`` / ``_gutter`` for matched
    pairs, ``unmatched-<id>_...`` otherwise. The canonical pair that notebooks 01-05 analyse is
    ``canonical`` (your STRIKE_VIDEO and GUTTER_VIDEO) or, without it, the first row."""
    pairs = []
    for i, row in enumerate(tqdm(rows, desc="decoding pairs", leave=False)):
        for outcome, path in (("strike", row.strike), ("gutter", row.gutter)):
            pairs.append(Clip(f"{row.name}_{outcome}", i, None, outcome, str(path),
                              read_clip(loaded, path, sampling, seed)))
    if not canonical:  # the first row, decoded once, serves as the canonical pair too
        canonical = [Clip(f"canonical_{c.outcome}", -1, None, c.outcome,
                          f"{c.source} (pair {rows[0].pair_id}, line {rows[0].line} of the pair CSV)", c.frames)
                     for c in pairs[:2]]
    return list(canonical) + pairs


def _download(filename: str) -> str:
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(PAPER_DATASET, filename, repo_type="dataset")
    except Exception as err:  # noqa: BLE001 - any hub failure gets the same advice
        raise VideoError(
            f"could not fetch {filename} from the HF dataset {PAPER_DATASET} ({type(err).__name__}"
            f"); offline? Download it elsewhere (`hf download {PAPER_DATASET} {filename} "
            "--repo-type dataset --local-dir clips`) and pass STRIKE_VIDEO=... GUTTER_VIDEO=..."
        ) from None


def to_model_frames(loaded: LoadedModel, clip: Clip, pixel_values: torch.Tensor | None = None) -> np.ndarray:
    """Frames as the model sees them: sampled to its frame count, at its resolution, uint8
    (for overlays; the model itself reads ``pixel_values``, which are reused when given)."""
    px = (loaded.preprocess(clip.frames) if pixel_values is None else pixel_values)[0]  # (frame, 3, H, W)
    lo, hi = float(px.min()), float(px.max())
    img = ((px - lo) / max(hi - lo, 1e-6) * 255).round().clamp(0, 255).to(torch.uint8)
    return img.permute(0, 2, 3, 1).numpy()


@contextmanager
def sdpa_attention(model):
    """The HF model runs its attention with PyTorch's fused kernel (SDPA) inside the block, its
    own implementation afterwards. The analyses load models with eager attention (it can return
    the weights); a forward pass that needs logits only is several times faster with SDPA (toy
    ViViT on 2 cores: 0.4 s vs 3.0 s per 8 clips; logits within 1e-5). Architectures without
    SDPA support keep their own implementation."""
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation("sdpa")
    except (ValueError, NotImplementedError, AttributeError):
        yield model
        return
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


def classify(loaded: LoadedModel, clips: list[Clip], pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits ``(clip, classes)``. The canonical pair comes from ``utils.hooks.clean_run``: the
    clean runs that notebooks 01-06 read are made here, once (at ViViT-B scale on 2 CPU cores
    a forward pass is ~16 s); every other clip goes through the HF model, 8 at a time."""
    from utils.hooks import HookedVideoTransformer, clean_run  # utils.hooks does not need this module

    canonical = [i for i, c in enumerate(clips) if c.id in (CANONICAL_STRIKE, CANONICAL_GUTTER)]
    rest = [i for i in range(len(clips)) if i not in canonical]
    parts: dict[int, torch.Tensor] = {}
    if canonical:
        hooked = HookedVideoTransformer(loaded)
        for i in canonical:
            parts[i] = clean_run(hooked, pixel_values[i : i + 1]).logits[0].cpu()
    with sdpa_attention(loaded.model), torch.inference_mode():
        for k in range(0, len(rest), 8):
            chunk = rest[k : k + 8]
            parts.update(zip(chunk, loaded.logits(pixel_values[chunk]), strict=True))
    return torch.stack([parts[i] for i in range(len(clips))])


def expected_classes(loaded: LoadedModel, clips: list[Clip]) -> list[int]:
    """The class each clip should get: the target class, except that a checkpoint naming a
    contrast class (``config.contrast_class``: toy-outcome's ``bowling gutter``) should put its
    gutter clips there."""
    contrast = getattr(loaded.config, "contrast_class", "") or ""
    index = {v: k for k, v in loaded.id2label.items()}
    if contrast and contrast not in index:
        raise ValueError(f"the checkpoint's contrast_class {contrast!r} is not one of its classes")
    return [index[contrast] if contrast and c.outcome == "gutter" else loaded.target_index for c in clips]


def prepare(loaded: LoadedModel, clips: list[Clip], data_dir: Path, fps: int = 8) -> dict:
    """Write MP4s, tensors and the manifest for ``clips``; classify every clip once (``classify``)."""
    data_dir = ensure_writable_dir(data_dir)
    with torch.inference_mode():
        pixel_values = torch.cat([loaded.preprocess(c.frames) for c in clips])
        model_frames = np.stack([to_model_frames(loaded, c, pixel_values[i : i + 1]) for i, c in enumerate(clips)])
    logits = classify(loaded, clips, pixel_values)
    expected = expected_classes(loaded, clips)
    entries = []
    for i, clip in enumerate(tqdm(clips, desc="writing clips", leave=False)):
        mp4 = data_dir / "clips" / f"{clip.id}.mp4"
        write_video(mp4, clip.frames, fps=fps)
        top = logits[i].topk(5)
        top5 = [{"class": loaded.id2label[int(k)], "logit": round(float(v), 4)}
                for v, k in zip(top.values, top.indices, strict=True)]
        entries.append({
            "id": clip.id, "pair": clip.pair, "seed": clip.seed, "outcome": clip.outcome,
            "source": clip.source, "frames": int(len(clip.frames)),
            "mp4": str(mp4.relative_to(paths.REPO_ROOT) if mp4.is_relative_to(paths.REPO_ROOT) else mp4),
            "mp4_sha256": sha256(mp4.read_bytes()),
            "tensor_sha256": sha256(pixel_values[i].numpy().tobytes()),
            "target_logit": round(float(logits[i, loaded.target_index]), 4),
            "predicted": top5[0]["class"],
            "expected": loaded.id2label[expected[i]],
            "is_target": int(logits[i].argmax()) == expected[i],  # classified as expected
            "top5": top5,
        })
    with atomic_path(data_dir / "tensors.pt") as tmp:
        torch.save({"ids": [c.id for c in clips], "frames": torch.from_numpy(model_frames),
                    "pixel_values": pixel_values}, tmp)
    lo, hi = loaded.input_range()
    manifest = {"profile": loaded.profile, "model": loaded.name, "source": loaded.source,
                "target": loaded.target_label, "target_index": loaded.target_index,
                "labels_source": loaded.labels_source,
                "preprocess": loaded.preprocess_mode, "pixel_range": [lo, hi],
                "pixel_range_fed": [round(float(pixel_values.min()), 4), round(float(pixel_values.max()), 4)],
                "num_frames": loaded.num_frames, "image_size": loaded.image_size,
                "clips": entries, "pairs": synthetic_pair_sizes(clips)}
    write_text(data_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def prediction_table(manifest: dict):
    """Table 0: one row per prepared clip: outcome, predicted class, target logit, top 5."""
    import pandas as pd

    return pd.DataFrame([
        {"clip_id": c["id"], "outcome": c["outcome"], "predicted": c["predicted"],
         "target_logit": c["target_logit"], "is_target": c["is_target"],
         **{f"top{k + 1}": f"{t['class']} ({t['logit']:.2f})" for k, t in enumerate(c["top5"])}}
        for c in manifest["clips"]])


def prediction_summary(pred, target_label: str):
    """Share of clips classified as the target, per kind of clip (canonical, pair, ...) and outcome."""
    kind = pred.clip_id.str.extract(r"^([a-z]+)")[0]
    summary = pred.assign(kind=kind).groupby(["kind", "outcome"]).is_target.agg(["mean", "size"])
    return summary.rename(columns={"mean": f"share classified {target_label}", "size": "clips"})


def first_different_frame(a: np.ndarray, b: np.ndarray) -> int | None:
    """Index of the first frame where two clips ``(frame, H, W, 3)`` differ (None: identical)."""
    differs = np.flatnonzero([(x != y).any() for x, y in zip(a, b, strict=True)])
    return int(differs[0]) if len(differs) else None


@dataclass
class Prepared:
    """What notebook 00 wrote, loaded back."""

    manifest: dict
    ids: list[str]
    frames: torch.Tensor  # uint8 (clip, frame, H, W, 3), at model resolution
    pixel_values: torch.Tensor  # float32 (clip, frame, 3, H, W)
    folder: Path | None = None  # where notebook 00 wrote them (data/<profile> unless data_dir says otherwise)

    def index(self, clip_id: str) -> int:
        return self.ids.index(clip_id)

    def pixels(self, clip_id: str) -> torch.Tensor:
        """``(1, frame, 3, H, W)`` model input of one clip."""
        return self.pixel_values[self.index(clip_id)][None]

    def model_frames(self, clip_id: str) -> np.ndarray:
        return self.frames[self.index(clip_id)].numpy()

    def pairs(self, prefix: str = "pair") -> list[tuple[str, str]]:
        """(strike id, gutter id) of every pair whose id starts with ``prefix``."""
        names = sorted({i.rsplit("_", 1)[0] for i in self.ids if i.startswith(prefix)})
        return [(f"{n}_strike", f"{n}_gutter") for n in names]

    def null_pairs(self) -> list[tuple[str, str]]:
        """(first id, second id) of every null pair (``null000_a``, ``null000_b``), in pair order."""
        names = sorted({i.rsplit("_", 1)[0] for i in self.ids if i.startswith("null")})
        return [(f"{n}_a", f"{n}_b") for n in names]

    def not_target(self) -> list[str]:
        """Ids of clips the model does not put into their expected class (the target class; for
        a model with a contrast class, gutter clips: that class; ``expected_classes``)."""
        return [c["id"] for c in self.manifest["clips"] if not c["is_target"]]

    def input_note(self) -> str:
        """Which preprocessing fed the model, and the pixel range it produces."""
        m = self.manifest
        if "preprocess" not in m:
            return ""
        lo, hi = m["pixel_range"]
        return f" Input: PREPROCESS={m['preprocess']}, pixels in [{lo:g}, {hi:g}]."

    def note(self) -> str:
        """A line for table notes: which clips are not classified as the target class, and
        which preprocessing fed the model."""
        bad = self.not_target()
        target = f"'{self.manifest['target']}'"
        if "target_index" in self.manifest:
            target += f" (class {self.manifest['target_index']})"
        others = sorted({c["expected"] for c in self.manifest["clips"] if c.get("expected", self.manifest["target"])
                         != self.manifest["target"]})
        if others:  # a model with a contrast class: gutter clips belong there
            target = f"expected ({target}; gutter clips: {', '.join(repr(o) for o in others)})"
        if not bad:
            return f"All clips are classified as {target}.{self.input_note()}"
        return (f"WARNING: {len(bad)} clip(s) not classified as {target}: "
                + ", ".join(bad) + "." + self.input_note())


def load_prepared(data_dir: str | Path) -> Prepared:
    data_dir = Path(data_dir)
    manifest_file, tensor_file = data_dir / "manifest.json", data_dir / "tensors.pt"
    for f in (manifest_file, tensor_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} is missing: run notebook 00_data_prep first (make figures does)")
    manifest = json.loads(manifest_file.read_text())
    t = torch.load(tensor_file)
    return Prepared(manifest, list(t["ids"]), t["frames"], t["pixel_values"], data_dir)
