"""One plotting style for every figure: the same colours for strike and gutter, for
attention and MLP, titles that say what is shown, units on every axis.

Figures of the untrained ``paper-shape`` model carry a red banner saying so.
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # the backend comes from outside: agg in `make figures`, inline in Jupyter
import numpy as np
import seaborn as sns
import torch

from utils.arch import ADAPTERS

STRIKE = "#009E73"  # bluish green: the strike run everywhere
GUTTER = "#D55E00"  # vermillion: the gutter run everywhere
ATTN = "#0072B2"  # blue: attention components
MLP = "#E69F00"  # orange: MLP components
PAPER = "#222222"  # the paper's reported numbers
RUN_COLOURS = {"strike": STRIKE, "gutter": GUTTER}
# every architecture's components (each adapter's component_colours): TimeSformer's two attention
# steps lighter and darker than ATTN
COMPONENT_COLOURS = dict(sorted({c: colour for a in ADAPTERS.values() for c, colour in a.component_colours.items()}
                               .items(), key=lambda kv: kv[0] == "mlp"))  # attention steps first, MLP last

sns.set_theme(context="paper", style="whitegrid", font_scale=1.05)
plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "axes.titleweight": "bold"})


def to_numpy(x) -> np.ndarray:
    """A tensor on any device (CUDA included, autograd or not) or an array-like -> numpy;
    bfloat16 and half become float32 (numpy has no bfloat16)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def even_steps(n_steps: int, n: int = 8) -> np.ndarray:
    """At most ``n`` evenly spaced indices of ``range(n_steps)``, first and last included:
    which tubelet time steps a figure shows."""
    return np.unique(np.linspace(0, n_steps - 1, min(n_steps, n)).round().astype(int))


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
                      steps=None, uniform: float | None = None):
    """CLS attention ``(t, row, col)`` upsampled onto the first frame of each tubelet.

    ``frames_by_run``: name -> uint8 ``(frame, H, W, 3)`` at model resolution. Without
    ``uniform`` the overlay is the raw weight. With ``uniform`` (the weight of uniform attention,
    ``utils.attention.uniform_attention``) it is the weight over its mean over the patches, on a
    log scale centred at 1 (1 = uniform over the patches, so the weight the readout keeps for
    itself does not tint every patch): red where the head looks more, blue where less,
    transparent where uniform, so the frames stay readable; each row states the patches' share
    against uniform attention over all keys.
    """
    from matplotlib.colors import LogNorm, Normalize

    names = list(frames_by_run)
    attn_by_run = {k: to_numpy(v) for k, v in attn_by_run.items()}
    T = next(iter(attn_by_run.values())).shape[0]
    steps = list(range(T)) if steps is None else list(steps)
    labels = {k: f"({'ab'[r]}) {k}" for r, k in enumerate(names)}
    if uniform is None:
        shown = attn_by_run
        norm, cmap, bar = Normalize(0, max(float(a.max()) for a in shown.values())), "inferno", "CLS attention weight"
        alpha_of = lambda up: 0.6  # noqa: E731
    else:
        shown = {k: np.maximum(a / a.mean(), 1e-3) for k, a in attn_by_run.items()}
        span = min(30.0, max(2.0, max(float(max(r.max(), 1 / r.min())) for r in shown.values())))
        norm, cmap = LogNorm(vmin=1 / span, vmax=span), "RdBu_r"
        bar = "attention ÷ its mean over patches\n(1 = uniform over patches; clear)"
        alpha_of = lambda up: np.clip(np.abs(np.log(up)) / np.log(span), 0, 1) * 0.8  # noqa: E731
        labels = {k: f"{lab}\n{float(attn_by_run[k].sum()) / (attn_by_run[k].size * uniform):.2f}x uniform on patches"
                  for k, lab in labels.items()}
    fig, axes = plt.subplots(len(names), len(steps), figsize=(1.7 * len(steps), 1.9 * len(names) + 0.6),
                             squeeze=False)
    for r, name in enumerate(names):
        frames = frames_by_run[name]
        H, W = frames.shape[1:3]
        for c, t in enumerate(steps):
            ax = axes[r, c]
            ax.imshow(frames[t * tubelet_t])
            up = _upsample(shown[name][t], H, W)
            im = ax.imshow(up, cmap=cmap, norm=norm, alpha=alpha_of(up))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t} (frames {t * tubelet_t}-{t * tubelet_t + tubelet_t - 1})",
                             fontsize=8, fontweight="normal")
            if c == 0:
                ax.set_ylabel(labels[name], color=RUN_COLOURS.get(name, "k"), fontweight="bold",
                              fontsize=8 if uniform is not None else None)
    cb = fig.colorbar(im, ax=axes, fraction=0.015, pad=0.01)
    cb.set_label(bar)
    fig.suptitle(title)
    return fig


def _upsample(grid: np.ndarray, H: int, W: int) -> np.ndarray:
    """A (row, col) patch grid blown up to (H, W) pixels, one constant block per patch."""
    return np.kron(grid, np.ones((H // grid.shape[0], W // grid.shape[1])))


def token_maps(rows, title: str, frames: np.ndarray | None = None, tubelet_t: int = 2, steps=None):
    """One row per map ``(time step, row, col)``, one column per time step, symmetric colour
    scale per row. ``rows``: ``[(map, row label, colour-bar label), ...]``; with ``frames``
    (uint8 ``(frame, H, W, 3)``) each map is drawn over the first frame of its tubelet."""
    rows = [(to_numpy(m), label, cbar_label) for m, label, cbar_label in rows]
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
            yticklabels="auto", xticklabels="auto", vmin=None, vmax=None):
    """A seaborn heatmap with a title, axis labels and a labelled colour bar; ``vmin`` /
    ``vmax`` fix the colour scale (give panels that are compared the same pair)."""
    sns.heatmap(to_numpy(data), ax=ax, cmap=cmap, center=center, vmin=vmin, vmax=vmax,
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
    """Grouped bars of ``column`` per layer, one bar per component (attention vs MLP; TimeSformer:
    temporal attention, spatial attention, MLP); ``paper``: optional ``{(layer, component): value}``
    of the paper's reported numbers, drawn as markers."""
    layers = sorted(df.layer.unique())
    comps = [c for c in COMPONENT_COLOURS if c in set(df.component)]
    width = 0.8 / len(comps)
    for k, comp in enumerate(comps):
        sub = df[df.component == comp].set_index("layer").reindex(layers)
        offset = (k - (len(comps) - 1) / 2) * width
        ax.bar(np.array(layers) + offset, sub[column], width,
               color=COMPONENT_COLOURS[comp], label=f"{comp} (ours)")
        if paper:
            pts = [(layer, v) for (layer, c), v in paper.items() if c == comp]
            if pts:
                px, py = zip(*pts, strict=True)
                ax.scatter(np.array(px) + offset, py, marker="D", s=30, color=COMPONENT_COLOURS[comp],
                           edgecolor=PAPER, linewidth=1.2, zorder=3, label=f"{comp} (paper, Table 3)")
    ax.axhline(0, color="k", lw=0.8)
    if full_line:
        ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xticks(layers)
    ax.set_xlabel("patched layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax



def symmetric_limit(*arrays) -> float:
    """``max |x|`` over all ``arrays``: one symmetric colour scale ``(-lim, lim)`` for panels
    that are compared with each other (1.0 when everything is zero)."""
    return max(float(np.abs(to_numpy(a)).max()) for a in arrays) or 1.0


def axis_window(values: np.ndarray, gap: float = 1.0, most: float = 0.01) -> tuple[float, float]:
    """Limits for a scatter's axes, padded by 5%: the full range of ``values``, cut only above or
    below an isolated few (at most ``most`` of them at either end) that lie beyond an empty gap of
    more than ``gap`` times the range of the central 99%. One outlier must not squeeze every other
    point into a corner; a long tail with points all along it keeps its axis."""
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    lo, hi = float(v[0]), float(v[-1])
    span = float(np.subtract(*np.quantile(v, [0.995, 0.005])))
    k = min(max(1, int(most * len(v))), len(v) - 1)
    if span > 0:
        for i in range(1, k + 1):  # the innermost wide gap among the k largest values, then the k smallest
            if v[-i] - v[-i - 1] > gap * span:
                hi = float(v[-i - 1])
            if v[i] - v[i - 1] > gap * span:
                lo = float(v[i])
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def layout_heatmaps(layouts: dict, title: str):
    """Fig. 4: per run (rows), the CLS attention in the correct ``(time step, patches)`` layout
    beside the author's ``(num_frames, chunk)`` layout. ``layouts``: name -> (correct, notebook)."""
    fig, axes = plt.subplots(len(layouts), 2, figsize=(13, 3.5 * len(layouts)), squeeze=False)
    for i, (name, (correct, notebook)) in enumerate(layouts.items()):
        per_step, chunk = correct.shape[1], notebook.shape[1]
        heatmap(axes[i, 0], correct, f"({'abcdefgh'[i]}) {name}: time step x patch (correct)",
                "patch index within the time step (row x cols + col)", "time step", cmap="magma",
                cbar_label="CLS attention", xticklabels=max(1, per_step // 8))
        heatmap(axes[i, 1], notebook, f"({'abcdefgh'[i]}) {name}: notebook layout",
                f"position in a {chunk}-patch chunk", "'frame' (chunk of the patch list)",
                cmap="magma", cbar_label="CLS attention", xticklabels=max(1, chunk // 8))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def logit_lens_figure(lens, time_step_lens: dict, target_label: str, readout: str = "CLS"):
    """Fig. 2: (a) the ``readout`` logit lens per run (``lens``: ``run``, ``layer``, ``logit``;
    "CLS", or "readout" where there is no CLS), then per
    run the lens on patch tokens per time step (``time_step_lens``: run -> ``(layer, time step)``),
    every heatmap on one symmetric colour scale so that the runs can be compared."""
    fig, axes = plt.subplots(1, 1 + len(time_step_lens), figsize=(16, 4.2),
                             gridspec_kw={"width_ratios": [1.1] + [1] * len(time_step_lens)})
    by_run = {k: d.sort_values("layer") for k, d in lens.groupby("run", sort=False)}
    layers = next(iter(by_run.values())).layer.to_numpy()
    line_by_run(axes[0], layers, {k: d.logit.to_numpy() for k, d in by_run.items()},
                f"'{target_label}' logit", f"(a) {readout} logit lens", "layer (0 = embedding)")
    lim = symmetric_limit(*time_step_lens.values())
    for ax, letter, (name, m) in zip(axes[1:], "bcdefgh", time_step_lens.items(), strict=False):
        heatmap(ax, m, f"({letter}) lens per time step: {name}", "time step", "layer (0 = embedding)",
                cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, cbar_label="mean patch logit")
        ax.invert_yaxis()
    fig.suptitle(f"Fig. 2 · Where the '{target_label}' logit appears, across layers and time steps")
    fig.tight_layout()
    return fig


def component_label(component: str) -> str:
    """``mlp`` -> ``MLP``, ``attention_time`` -> ``attention (time)``: legend text."""
    if component == "mlp":
        return "MLP"
    return component.replace("_", " (", 1) + ")" if "_" in component else component


def dla_bars(ax, dla, title: str, colour=None):
    """Direct logit attribution of each layer's components for one run: every component of
    ``COMPONENT_COLOURS`` that ``dla`` holds (rows with ``component``, ``layer`` and ``logit``;
    TimeSformer: both attention steps and the MLP), side by side per layer."""
    comps = [c for c in COMPONENT_COLOURS if c in set(dla.component)]
    width = 0.8 / max(1, len(comps))
    for k, comp in enumerate(comps):
        d = dla[dla.component == comp].sort_values("layer")
        ax.bar(d.layer + (k - (len(comps) - 1) / 2) * width, d.logit, width, color=COMPONENT_COLOURS[comp],
               label=component_label(comp))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title(title, color=colour)
    ax.set_xlabel("layer")
    ax.set_xticks(sorted(dla[dla.component.isin(comps)].layer.unique()))
    return ax


def dla_figure(dla, logits: dict, target_label: str, frozen: str = "final LayerNorm scale frozen"):
    """Fig. 2c: one bar panel per run (``dla`` with a ``run`` column; ``logits``: run -> the
    model's target logit), sharing the y axis; titles give the logit, embedding and constant terms;
    ``frozen`` says what the decomposition holds fixed (the adapter's ``dla_frozen``)."""
    fig, axes = plt.subplots(1, len(logits), figsize=(13, 3.8), sharey=True, squeeze=False)
    for ax, (name, logit) in zip(axes[0], logits.items(), strict=True):
        d = dla[dla.run == name]
        term = {c: float(d[d.component == c].logit.iloc[0]) for c in ("embed", "constant")}
        dla_bars(ax, d, f"{name}: logit {logit:.2f} (embed {term['embed']:+.2f}, const {term['constant']:+.2f})",
                 colour=RUN_COLOURS.get(name))
    axes[0, 0].set_ylabel(f"direct contribution to '{target_label}' logit")
    axes[0, 0].legend()
    fig.suptitle(f"Fig. 2c · Direct logit attribution per component ({frozen})")
    fig.tight_layout()
    return fig


def delta_norm_panels(deltas, paper: dict | None = None):
    """Fig. 5: (a) the strike - gutter delta norm per layer (all tokens, patch tokens, CLS),
    with ``paper`` ``{layer: value}`` as markers; (b) the same relative to the stream's size."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    ax.plot(deltas.layer, deltas.mean_token_norm, "o-", color="k", label="mean over all tokens")
    ax.plot(deltas.layer, deltas.patch_mean_norm, "s--", color="grey", label="mean over patch tokens")
    ax.plot(deltas.layer, deltas.cls_norm, "^-", color="tab:purple", label="CLS token")
    if paper:
        ax.scatter(list(paper), list(paper.values()), marker="D", color=PAPER, zorder=3, label="paper (Fig. 5)")
    ax.set_xlabel("layer (-1 = embedding)")
    ax.set_ylabel("||strike − gutter||₂ per token")
    ax.set_title("(a) absolute delta norm")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(deltas.layer, deltas.relative, "o-", color="k")
    ax.set_xlabel("layer (-1 = embedding)")
    ax.set_ylabel("delta norm / gutter token norm")
    ax.set_title("(b) relative to the size of the residual stream")
    fig.suptitle("Fig. 5 · How far apart the strike and gutter runs are at each layer")
    fig.tight_layout()
    return fig


def probe_curves(ax, probes, title: str):
    """Fig. 6: accuracy per layer of each probe (``probes``: ``probe``, ``scored_on``,
    ``layer``, ``accuracy`` in [0, 1]); the legend says what each is scored on (the paper's
    two-vector probe on its own training vectors, the others on held-out data)."""
    for (name, d), marker in zip(probes.groupby("probe", sort=False), "os^v", strict=False):
        ax.plot(d.layer, 100 * d.accuracy, marker=marker, label=f"{name}; scored on {d.scored_on.iloc[0]}")
    ax.axhline(50, color="grey", ls="--", lw=1, label="chance")
    ax.set_ylim(0, 105)
    ax.set_xlabel("layer")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def ablation_change_bars(tables: dict, target: int, target_label: str, title: str):
    """Tables 1-2 figure: per run, the change of the target logit in each ablation mode
    (``tables``: run -> table with ``mode``, ``class_index``, ``change``, ``n_ablated``)."""
    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 3.8), squeeze=False)
    for ax, (name, t) in zip(axes[0], tables.items(), strict=True):
        rows = t[t.class_index == target]
        ax.bar(rows["mode"], rows.change, color=RUN_COLOURS.get(name))
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel(f"change of '{target_label}' logit")
        ax.set_title(f"{name}: ablating {t.n_ablated.iloc[0]} patches")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def component_ablation_figure(comp, target_label: str, head_run: str = "strike"):
    """Fig. 8: change of the target logit when one component is zero- or mean-ablated, per layer
    (every component, strike solid / gutter dashed), and the per-head mean ablation of
    ``head_run`` as a layers x heads heatmap when ``comp`` has head rows."""
    fig, axes = plt.subplots(1, 3, figsize=(18, 4))
    for ax, how in zip(axes[:2], ("zero", "mean"), strict=True):
        for name, ls in (("strike", "-"), ("gutter", "--")):
            for c, col in COMPONENT_COLOURS.items():
                d = comp[(comp.run == name) & (comp.how == how) & (comp.component == c)]
                if len(d):
                    ax.plot(d.layer, d.delta_target_logit, ls, marker="o", color=col, label=f"{c}, {name}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("layer")
        ax.set_ylabel("Δ target logit")
        ax.set_title(f"{how}-ablation of one component")
        ax.legend(fontsize=7)
    heads = comp[(comp.run == head_run) & (comp.how == "mean") & comp.component.str.endswith("head")]
    if len(heads):  # TimeSformer: a row per layer and attention step (attention_time_head, ...)
        rows = "layer" if heads.component.nunique() == 1 else ["layer", "component"]
        heatmap(axes[2], heads.pivot(index=rows, columns="head", values="delta_target_logit"),
                f"mean-ablation of one head ({head_run})", "head", "layer", cmap="RdBu_r", center=0,
                cbar_label="Δ target logit")
    else:
        axes[2].text(0.5, 0.5, "per-head ablation off (head_ablation = 0; default outside toy)",
                     ha="center", va="center", transform=axes[2].transAxes)
        axes[2].axis("off")
    fig.suptitle(f"Component ablation: how much the '{target_label}' logit needs each component")
    fig.tight_layout()
    return fig
