"""How far apart two runs are, layer by layer (the paper's Fig. 5 "amplification cascade").

For runs a and b (strike and gutter) and each layer's output ``resid_post`` (plus the
embedding), the per-token L2 norm of the difference ``||a[t] - b[t]||``, averaged over all
tokens (CLS included, 3137 at paper scale), over patch tokens alone, and at CLS alone (NaN
for VideoMAE, which has no CLS token).
"""

from __future__ import annotations

import pandas as pd
import torch

from utils.hooks import HookedVideoTransformer


def delta_names(hooked: HookedVideoTransformer) -> list[str]:
    return ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]


@torch.inference_mode()
def delta_norms(hooked: HookedVideoTransformer, run_a, run_b, batch_index: int = 0) -> pd.DataFrame:
    """One row per site: ``layer`` (-1 = embedding), ``site``, ``mean_token_norm``,
    ``patch_mean_norm``, ``cls_norm``, and ``relative`` (mean_token_norm divided by the mean
    token norm of run b at that site: how large the difference is against the stream)."""
    rows = []
    for layer, name in zip(range(-1, hooked.n_layers), delta_names(hooked), strict=True):
        a, b = run_a.cache[name][batch_index], run_b.cache[name][batch_index]  # (tokens, d_model)
        norms = (a - b).norm(dim=-1)
        rows.append({
            "layer": layer,
            "site": name,
            "mean_token_norm": float(norms.mean()),
            "patch_mean_norm": float(norms[hooked.n_prefix:].mean()),
            "cls_norm": float(norms[0]) if hooked.has_cls else float("nan"),
            "relative": float(norms.mean() / b.norm(dim=-1).mean()),
        })
    return pd.DataFrame(rows)
