# %% [markdown]
# # Exercise 3 · Activation patching and the three recovery measures
#
# > **Difficulty** 🔴🔴⚪ · **Importance** 🔵🔵🔵 · **Time** about 30 minutes
# >
# > Builds on notebook 04 (`04_activation_patching`, the paper's Table 3). You will be able to
# > patch one component from a *source* run into a *target* run, and say what each of the three
# > recovery measures the paper and its notebook use does and does not measure.
#
# **The idea.** Run the *target* clip (gutter) but replace one activation, say layer 6's
# attention output, by its value in the *source* run (strike). How far does the final residual
# move toward the source run? With $d_{patch} = x_{patched} - x_{target}$ and
# $d_{full} = x_{source} - x_{target}$ (final residuals, `(tokens, d_model)`):
#
# * the notebook's measure (means over tokens):
#   $100\,\overline{\lVert d_{patch}[t]\rVert} / \overline{\lVert d_{full}[t]\rVert}$;
# * the paper's eq. 2: $100\,\mathrm{sign}(d_{patch}\cdot d_{full})\,\lVert d_{patch}\rVert / \lVert d_{full}\rVert$;
# * the projection: $100\, d_{patch}\cdot d_{full} / \lVert d_{full}\rVert^2$.
#
# **Glossary.** A *hook* is a function `fn(activation, name)` passed as
# `hooked.run(pixels, hooks={name: fn})`; returning a tensor replaces the activation.
# *Source* / *target* are the paper's words for what the field calls *clean* / *corrupted*.

# %%
import torch

from utils.checks import check_patch_component, check_recovery_measures, full_run, toy_pair

hooked, target_class, strike, gutter = toy_pair()
source_run, target_run = full_run(strike), full_run(gutter)
final = f"blocks.{hooked.n_layers - 1}.hook_resid_post"


# %% [markdown]
# ## 3.1 · Patch one component

# %%
def patch_component(hooked, source_run, target_pixels, layer: int, hook: str) -> torch.Tensor:
    """The final residual ``(tokens, d_model)`` of the target clip with ``blocks.{layer}.{hook}``
    replaced by its value in ``source_run``."""
    # SOLUTION
    name = f"blocks.{layer}.{hook}"
    last = f"blocks.{hooked.n_layers - 1}.hook_resid_post"
    run = hooked.run(target_pixels, names={last}, hooks={name: lambda act, _name: source_run[name]})
    return run[last][0]
    # END SOLUTION


check_patch_component(patch_component)


# %% [markdown]
# ## 3.2 · Three ways to say "how much"

# %%
def recovery_measures(patched: torch.Tensor, target: torch.Tensor, source: torch.Tensor) -> dict:
    """The notebook measure, eq. 2 and the projection, in percent, for ``(tokens, d_model)``
    final residuals: keys ``recovery_notebook_pct``, ``recovery_eq2_pct``, ``recovery_projection_pct``."""
    # SOLUTION
    d_patch, d_full = (patched - target).double(), (source - target).double()
    dot = float((d_patch * d_full).sum())
    sign = (dot > 0) - (dot < 0)
    return {
        "recovery_notebook_pct": 100 * float(d_patch.norm(dim=-1).mean() / d_full.norm(dim=-1).mean()),
        "recovery_eq2_pct": 100 * sign * float(d_patch.norm() / d_full.norm()),
        "recovery_projection_pct": 100 * dot / float((d_full * d_full).sum()),
    }
    # END SOLUTION


check_recovery_measures(recovery_measures)

# %% [markdown]
# ## 3.3 · Attention or MLP?
#
# Patch every layer's `hook_attn_out` and `hook_mlp_out` and print the three measures. Which
# measure can exceed 100%? Which can be negative? Which one does the paper's Table 3 use, and
# does the attention-vs-MLP ordering depend on the measure? Compare with notebook 04.

# %%
for layer in range(hooked.n_layers):
    row = []
    for hook in ("hook_attn_out", "hook_mlp_out"):
        m = recovery_measures(patch_component(hooked, source_run, gutter, layer, hook), target_run[final][0],
                              source_run[final][0])
        row.append(" ".join(f"{m[k]:7.2f}" for k in m))
    print(f"layer {layer:2d}  attention {row[0]}   mlp {row[1]}")
