"""The numbers the paper reports (``../shared/paper.md``), to show beside ours.

They were measured on ``google/vivit-b-16x2-kinetics400`` and the author's two Kinetics
clips; the toy model cannot be expected to match them, only the ``paper`` profile can.
"""

# Table 3: recovery (%) by patching strike into gutter, (layer, component) -> value.
# The author's notebook metric (mean token-norm ratio, unsigned).
TABLE3 = {
    (4, "attention"): 54.41, (4, "mlp"): 60.17,
    (5, "attention"): 50.22, (5, "mlp"): 57.49,
    (6, "attention"): 43.62, (6, "mlp"): 49.11,
    (7, "attention"): 40.38, (7, "mlp"): 42.55,
    (8, "attention"): 37.72, (8, "mlp"): 42.10,
    (9, "attention"): 44.43, (9, "mlp"): 58.66,
    (10, "attention"): 47.61, (10, "mlp"): 43.39,
}
TABLE3_DENOMINATOR = 265.38  # mean token norm of strike - gutter at the layer-11 output

# Tables 1 and 2: top-5 logits before -> after the top-10% token ablation (313 patches).
TABLE1_STRIKE = [
    ("bowling", 16.9954, 16.6583),
    ("throwing ball", 9.0371, 9.1341),
    ("playing cricket", 6.2185, 6.4343),
    ("high kick", 5.9146, 5.7234),
    ("dancing ballet", 5.7508, 5.7579),
]
TABLE2_GUTTER = [
    ("bowling", 16.5200, 16.5044),
    ("throwing ball", 6.3758, 6.6308),
    ("headbutting", 4.8109, 5.1653),
    ("playing cricket", 4.6217, 4.6968),
    ("throwing baseball", 4.2289, 4.3045),
]

# Fig. 2: "Confidence in 'bowling' rises from layer 9 on" (of ViViT-B's 12 layers).
LENS_RISES_FROM = 9
N_LAYERS = 12

# Fig. 5: mean L2 norm of the strike - gutter residual delta, read off the figure.
FIG5 = {5: 75.0, 11: 250.0}  # "about 75 at layer 5, over 250 at layer 11"
GROWTH_FROM = 5  # the delta's growth everywhere: last layer / this layer (Fig. 5's first value)

# Fig. 1 and Fig. 4: the heads the paper points to (0-based layer, head).
FIG1_HEAD = (10, 8)
FIG4_HEAD = (9, 8)


def table3_reading() -> str:
    """What the paper's Table 3 says about attention vs MLP, derived from ``TABLE3`` (not from
    the paper's prose): at which layers each component recovers more."""
    layers = sorted({layer for layer, _ in TABLE3})
    mlp = [lay for lay in layers if TABLE3[(lay, "mlp")] > TABLE3[(lay, "attention")]]
    att = [lay for lay in layers if TABLE3[(lay, "attention")] > TABLE3[(lay, "mlp")]]

    def span(ls):
        if not ls:
            return "no layer"
        runs, start = [], ls[0]
        for a, b in zip(ls, ls[1:] + [None], strict=True):
            if b != a + 1:
                runs.append(f"{start}" if start == a else f"{start}-{a}")
                start = b
        return "layer" + ("s " if len(ls) > 1 else " ") + ", ".join(runs)

    return (f"In the paper's Table 3 (layers {layers[0]}-{layers[-1]}), patching the MLP recovers more than patching "
            f"attention at {span(mlp)}, and attention recovers more at {span(att)}.")
