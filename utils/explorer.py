"""The interactive explorer: one self-contained page, ``site/explorer/index.html`` (``make site``).

For the canonical pair of one profile's run it shows the clips' frames per tubelet time step
with the readout's attention (any layer, any head) laid over them, a time-step slider, the
patching sweep (Table 3) and the head-patching grid (Table 9) as heatmaps that name the cell
under the pointer, and the circuit of notebook 08 (Table 27) as a graph whose edges light up
when the pointer is on a node. Everything it shows comes from the run itself: the frames and
tensors notebook 00 prepared (``data/<profile>``), one forward pass of the model for the
attention, and the tables the notebooks wrote (``figures/<profile>``). The data and the script
are inline in the page; it asks no other host for anything and needs no server.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from utils import paths

TEMPLATE = Path(__file__).with_name("explorer.html")


def _png(frame: np.ndarray) -> str:
    """A ``data:`` URI of one uint8 ``(H, W, 3)`` frame."""
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, np.ascontiguousarray(frame), format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _records(df: pd.DataFrame | None, columns: list[str]) -> list[dict] | None:
    if df is None:
        return None
    keep = [c for c in columns if c in df.columns]
    out = df[keep].copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(4)
    return json.loads(out.to_json(orient="records"))


def _table(figures: Path, name: str) -> pd.DataFrame | None:
    f = figures / f"{name}.csv"
    return pd.read_csv(f) if f.is_file() else None


def explorer_data(profile: str = "toy", figures_dir: Path | None = None, data_dir: Path | None = None,
                  device: str = "cpu") -> dict:
    """Everything the page shows, as JSON-ready values (module docstring)."""
    from utils.attention import readout_attention_map, readout_attention_names, uniform_attention
    from utils.data import CANONICAL_GUTTER, CANONICAL_STRIKE, load_prepared
    from utils.hooks import HookedVideoTransformer, clean_run
    from utils.models import load_model

    figures = Path(figures_dir or paths.figures_dir(profile))
    data = load_prepared(data_dir or paths.data_dir(profile))
    loaded = load_model(profile, device=device)
    hooked = HookedVideoTransformer(loaded)
    T, R, C = hooked.grid
    tubelet = int(loaded.tubelet[0])
    clips = {"strike": CANONICAL_STRIKE, "gutter": CANONICAL_GUTTER}
    frames, attention = {}, {}
    with torch.inference_mode():
        for run, clip in clips.items():
            pictures = data.model_frames(clip)  # uint8 (frame, H, W, 3)
            frames[run] = [_png(pictures[min(t * tubelet, len(pictures) - 1)]) for t in range(T)]
            cache = clean_run(hooked, data.pixels(clip), readout_attention_names(hooked))
            attention[run] = [[np.round(readout_attention_map(hooked, cache, layer, head).ravel(), 5).tolist()
                               for head in range(hooked.n_heads)] for layer in range(hooked.n_layers)]
    patching = _table(figures, "table3_patching")
    heads = _table(figures, "table9_head_patching")
    if heads is not None:
        heads = heads[heads.measure == "recovery_projection_pct"]
    edges = _table(figures, "table27_circuit_edges")
    return {
        "profile": profile, "model": loaded.name, "arch": hooked.arch, "target": loaded.target_label,
        "grid": [T, R, C], "tubelet": tubelet, "n_layers": hooked.n_layers, "n_heads": hooked.n_heads,
        "components": list(hooked.components), "uniform": uniform_attention(hooked),
        "readout": "CLS" if hooked.has_cls else "token mean",
        "frames": frames, "attention": attention,
        "patching": _records(patching, ["layer", "component", "recovery_projection_pct", "recovery_notebook_pct",
                                        "recovery_eq2_pct", "delta_target_logit"]),
        "heads": _records(heads, ["layer", "head", "estimate", "ci_low", "ci_high", "n_pairs"]),
        "edges": _records(edges, ["sender", "receiver", "sender_layer", "sender_component", "head", "receiver_layer",
                                  "receiver_component", "score"]),
    }


def write_explorer(out_dir: Path, data: dict) -> Path:
    """``out_dir/index.html``: the template with ``data`` inline (written whole, then renamed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # never closes the script tag
    html = TEMPLATE.read_text().replace("/*EXPLORER_DATA*/null", payload)
    page = out_dir / "index.html"
    tmp = page.with_suffix(".html.partial")
    tmp.write_text(html)
    tmp.replace(page)
    return page


def build_explorer(profile: str = "toy", out_dir: Path | None = None, figures_dir: Path | None = None,
                   data_dir: Path | None = None, device: str = "cpu") -> Path:
    """Build ``site/explorer/index.html`` (or ``out_dir/index.html``) for ``profile``."""
    return write_explorer(out_dir or paths.REPO_ROOT / "site" / "explorer",
                          explorer_data(profile, figures_dir, data_dir, device))
