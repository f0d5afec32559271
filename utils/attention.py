"""Where the readout looks: one head's attention from the token the classifier reads, as maps
per time step (Fig. 1, Fig. 4).

ViViT: ``blocks.{l}.attn.hook_pattern_cls`` is the CLS query's attention over all tokens
``(batch, head, tokens)`` (``utils.hooks``). Dropping the CLS entry and reshaping the patch
tokens in model order (time step, then row, then column) gives a ``(time step, row, col)`` map
(``readout_attention_map``). TimeSformer: the CLS query of the spatial attention, once per frame
(``attn_space.hook_pattern_cls``, ``(batch, frame, head, 1 + rows * cols)``): each frame's map
is that frame's row, CLS entry dropped. VideoMAE has no CLS: its classifier reads the mean of
all tokens, so the attention of its readout is the mean over queries of the full pattern
(``attn.hook_pattern``), which is what the map shows. The author's notebook instead cut the
patch list into ``num_frames`` rows
(``notebook_layout``: 3136 patches as 32 x 98 for ViViT-B), which mixes time steps within a
row; ``time_step_layout`` is the correct ``(time step, patches of that step)`` layout.

Two summaries per time step: where the single most-attended patch sits (``peaks``), and how
far apart two runs' maps are (``total_variation``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from utils.hooks import HookedVideoTransformer
from utils.plotting import to_numpy
from utils.synthetic import bowling_divergence_frame


def readout_attention_site(hooked: HookedVideoTransformer) -> str:
    """The block site whose rows show what the readout attends to (the adapter says which)."""
    return hooked.adapter.readout_attention_site


def readout_attention_names(hooked: HookedVideoTransformer) -> list[str]:
    """The readout's attention activation of every layer (module docstring)."""
    site = readout_attention_site(hooked)
    return [f"blocks.{layer}.{site}" for layer in range(hooked.n_layers)]


def readout_attention_map(hooked: HookedVideoTransformer, run, layer: int, head: int,
                          batch_index: int = 0) -> np.ndarray:
    """``(time step, row, col)`` attention of ``head`` in ``layer`` from the token the
    classifier reads (CLS entry dropped; module docstring)."""
    act = run[f"blocks.{layer}.{readout_attention_site(hooked)}"][batch_index]
    return to_numpy(hooked.adapter.readout_attention_map(act, head, hooked.by_time_step))


def uniform_attention(hooked: HookedVideoTransformer) -> float:
    """The weight every key would get from a uniform readout-attention row (the baseline of Fig. 1)."""
    return 1.0 / hooked.adapter.readout_attention_keys()


def readout_attention_row(hooked: HookedVideoTransformer, run, layer: int, batch_index: int = 0):
    """``(patches,)`` in token order: ``readout_attention_map`` averaged over heads (a torch tensor)."""
    maps = np.stack([readout_attention_map(hooked, run, layer, h, batch_index) for h in range(hooked.n_heads)]).mean(0)
    return hooked.to_token_order(torch.as_tensor(maps))


def time_step_layout(patch_row: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """``(patches,)`` in token order -> ``(time step, row * cols)``: one row per time step,
    its patches in raster order (the model's token order)."""
    T, R, C = grid
    return np.asarray(patch_row).reshape(T, R * C)


def notebook_layout(patch_row: np.ndarray, num_frames: int) -> np.ndarray:
    """The author's layout: the patch list cut into ``num_frames`` equal rows
    ``(num_frames, patches // num_frames)`` - not time steps, since a time step covers two frames."""
    patch_row = np.asarray(patch_row)
    if patch_row.size % num_frames:
        raise ValueError(f"{patch_row.size} patches do not split into {num_frames} equal rows")
    return patch_row.reshape(num_frames, -1)


def peaks(maps: dict[str, np.ndarray], tubelet_t: int) -> pd.DataFrame:
    """Per run and time step of ``maps`` (name -> ``(time step, row, col)``): ``frames`` the
    step covers, ``patch_attention_sum`` (the step's share of the CLS attention), and the most
    attended patch: ``top_patch_row``, ``top_patch_col``, ``top_patch_weight``."""
    rows = []
    for name, m in maps.items():
        m = np.asarray(m)
        flat = m.reshape(m.shape[0], -1)  # (time step, row * col)
        top = flat.argmax(1)
        for t in range(m.shape[0]):
            r, c = np.unravel_index(top[t], m.shape[1:])
            rows.append({"run": name, "time_step": t,
                         "frames": f"{t * tubelet_t}-{(t + 1) * tubelet_t - 1}",
                         "patch_attention_sum": float(flat[t].sum()), "top_patch_row": int(r),
                         "top_patch_col": int(c), "top_patch_weight": float(flat[t, top[t]])})
    return pd.DataFrame(rows)


def total_variation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(time step,)`` total-variation distance between two maps ``(time step, row, col)``,
    each time step's map renormalised to sum to 1 over its patches: ``0.5 * sum |p - q|``,
    0 = the same distribution over the step's patches, 1 = disjoint."""
    a, b = (np.asarray(x, dtype=np.float64).reshape(len(x), -1) for x in (a, b))
    p = a / a.sum(1, keepdims=True)
    q = b / b.sum(1, keepdims=True)
    return 0.5 * np.abs(p - q).sum(1)


def divergence_time_step(manifest: dict, num_frames: int, tubelet_t: int) -> int | None:
    """Tubelet time step at which the synthetic pair's paths diverge (None for real clips,
    whose manifest entries carry no seed)."""
    if manifest["clips"][0].get("seed") is None:
        return None
    return bowling_divergence_frame(num_frames) // tubelet_t


def check_layer_head(n_layers: int, n_heads: int, **indices: int) -> None:
    """Raise a clear error for a layer or head index (a parameter named ``*layer*`` or
    ``*head*``) outside the model: ``check_layer_head(12, 12, layer=10, head=8)``."""
    for name, value in indices.items():
        kind, limit = ("layers", n_layers) if "layer" in name else ("heads", n_heads)
        if not 0 <= value < limit:
            raise ValueError(f"parameter {name}={value} is out of range: this model has {limit} "
                             f"{kind}, numbered 0..{limit - 1}")
