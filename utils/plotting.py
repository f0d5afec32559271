"""One plotting style for every figure: the same colours for strike and gutter, for
attention and MLP, titles that say what is shown, units on every axis.

Figures of the untrained ``paper-shape`` model carry a red banner saying so.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402

STRIKE = "#009E73"  # bluish green: the strike run everywhere
GUTTER = "#D55E00"  # vermillion: the gutter run everywhere
ATTN = "#0072B2"  # blue: attention components
MLP = "#E69F00"  # orange: MLP components
PAPER = "#222222"  # the paper's reported numbers
RUN_COLOURS = {"strike": STRIKE, "gutter": GUTTER}
COMPONENT_COLOURS = {"attention": ATTN, "mlp": MLP}

sns.set_theme(context="paper", style="whitegrid", font_scale=1.05)
plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "axes.titleweight": "bold"})


def mark_model(fig, loaded) -> None:
    """Footnote naming the model; a red banner for an untrained model."""
    if loaded.untrained:
        fig.text(0.5, 1.0, "UNTRAINED paper-shape model (random weights): checks shapes and "
                 "costs only - these values mean nothing", ha="center", va="bottom",
                 color="white", fontsize=10, fontweight="bold",
                 bbox={"facecolor": "#c0392b", "edgecolor": "none", "pad": 4})
    fig.text(0.99, -0.01, f"model: {loaded.name}", ha="right", va="top", fontsize=7,
             color="#555555")


def frame_strip(strike: np.ndarray, gutter: np.ndarray, n: int = 8, title: str = ""):
    """Strike frames above gutter frames, ``n`` evenly spaced frames with their indices."""
    idx = np.linspace(0, len(strike) - 1, n).round().astype(int)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.7))
    for row, (clip, name) in enumerate(((strike, "strike"), (gutter, "gutter"))):
        for col, f in enumerate(idx):
            ax = axes[row, col]
            ax.imshow(clip[f])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {f}", fontsize=9, fontweight="normal")
            if col == 0:
                ax.set_ylabel(name, color=RUN_COLOURS[name], fontsize=11, fontweight="bold")
        for spine in axes[row, 0].spines.values():
            spine.set_edgecolor(RUN_COLOURS[name])
            spine.set_linewidth(3)
    fig.suptitle(title or "The matched pair: identical until the ball's path diverges")
    fig.tight_layout()
    return fig


def attention_overlay(frames_by_run: dict, attn_by_run: dict, tubelet_t: int, title: str,
                      steps=None):
    """CLS attention ``(t, row, col)`` upsampled onto the first frame of each tubelet.

    ``frames_by_run``: name -> uint8 ``(frame, H, W, 3)`` at model resolution.
    """
    names = list(frames_by_run)
    T = next(iter(attn_by_run.values())).shape[0]
    steps = list(range(T)) if steps is None else list(steps)
    vmax = max(float(a.max()) for a in attn_by_run.values())
    fig, axes = plt.subplots(len(names), len(steps), figsize=(1.7 * len(steps), 1.9 * len(names) + 0.6),
                             squeeze=False)
    for r, name in enumerate(names):
        frames, attn = frames_by_run[name], attn_by_run[name]
        H, W = frames.shape[1:3]
        for c, t in enumerate(steps):
            ax = axes[r, c]
            ax.imshow(frames[t * tubelet_t])
            im = ax.imshow(_upsample(attn[t], H, W), cmap="inferno", alpha=0.6, vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t} (frames {t * tubelet_t}-{t * tubelet_t + tubelet_t - 1})",
                             fontsize=8, fontweight="normal")
            if c == 0:
                ax.set_ylabel(f"({'ab'[r]}) {name}", color=RUN_COLOURS.get(name, "k"),
                              fontweight="bold")
    cb = fig.colorbar(im, ax=axes, fraction=0.015, pad=0.01)
    cb.set_label("CLS attention weight")
    fig.suptitle(title)
    return fig


def _upsample(grid: np.ndarray, H: int, W: int) -> np.ndarray:
    """A (row, col) patch grid blown up to (H, W) pixels, one constant block per patch."""
    return np.kron(grid, np.ones((H // grid.shape[0], W // grid.shape[1])))


def token_maps(rows, title: str, frames: np.ndarray | None = None, tubelet_t: int = 2, steps=None):
    """One row per map ``(time step, row, col)``, one column per time step, symmetric colour
    scale per row. ``rows``: ``[(map, row label, colour-bar label), ...]``; with ``frames``
    (uint8 ``(frame, H, W, 3)``) each map is drawn over the first frame of its tubelet."""
    T = rows[0][0].shape[0]
    steps = list(range(T)) if steps is None else list(steps)
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(1.85 * len(steps), 2.2 * len(rows)),
                             squeeze=False)
    for r, (m, label, cbar_label) in enumerate(rows):
        lim = float(np.abs(m).max()) or 1.0
        for c, t in enumerate(steps):
            ax = axes[r, c]
            if frames is None:
                im = ax.imshow(m[t], cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.imshow(frames[t * tubelet_t])
                H, W = frames.shape[1:3]
                im = ax.imshow(_upsample(m[t], H, W), cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.65)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=9, fontweight="normal")
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
        fig.colorbar(im, ax=axes[r], fraction=0.02, pad=0.01).set_label(cbar_label)
    fig.suptitle(title)
    return fig


def heatmap(ax, data, title, xlabel, ylabel, cmap="viridis", center=None, cbar_label="",
            yticklabels="auto", xticklabels="auto"):
    sns.heatmap(np.asarray(data), ax=ax, cmap=cmap, center=center,
                cbar_kws={"label": cbar_label}, xticklabels=xticklabels, yticklabels=yticklabels)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def line_by_run(ax, x, ys: dict, ylabel, title, xlabel="layer"):
    for name, y in ys.items():
        ax.plot(x, y, marker="o", color=RUN_COLOURS.get(name), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return ax


def recovery_bars(ax, df, column, title, paper=None, ylabel="recovery (%)", full_line=True):
    """Grouped bars of ``column`` per layer for attention vs MLP; ``paper``: optional
    ``{(layer, component): value}`` of the paper's reported numbers, drawn as markers."""
    layers = sorted(df.layer.unique())
    width = 0.4
    for k, comp in enumerate(("attention", "mlp")):
        sub = df[df.component == comp].set_index("layer").reindex(layers)
        ax.bar(np.array(layers) + (k - 0.5) * width, sub[column], width,
               color=COMPONENT_COLOURS[comp], label=f"{comp} (ours)")
        if paper:
            pts = [(layer, v) for (layer, c), v in paper.items() if c == comp]
            if pts:
                px, py = zip(*pts, strict=True)
                ax.scatter(np.array(px) + (k - 0.5) * width, py, marker="D", s=22,
                           color=PAPER, edgecolor="white", zorder=3,
                           label="paper (Table 3)" if k == 0 else None)
    ax.axhline(0, color="k", lw=0.8)
    if full_line:
        ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xticks(layers)
    ax.set_xlabel("patched layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
