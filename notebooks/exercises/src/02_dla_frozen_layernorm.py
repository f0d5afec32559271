# %% [markdown]
# # Exercise 2 · Direct logit attribution with the final LayerNorm frozen
#
# > **Difficulty** 🔴🔴⚪ · **Importance** 🔵🔵🔵 · **Time** about 25 minutes
# >
# > Builds on exercise 1 and notebook 02 (Fig. 2c). You will be able to split the model's logit
# > exactly into one term per component, and say why the split needs the LayerNorm's scale frozen.
#
# **The idea.** The final residual is a sum: the embedding plus every attention output plus
# every MLP output. The classifier reads it through a LayerNorm,
# $\mathrm{LN}(x) = \gamma \odot (x - \bar{x}) / \sigma(x) + \beta$, which is linear in $x$ *once
# $\sigma$ is fixed*. With $\sigma$ taken from the final residual (frozen), each component $c$
# contributes
#
# $$\text{DLA}(c) = \big(W_U[:, t] \odot \gamma\big) \cdot (c - \bar{c}) \,/\, \sigma_{final},$$
#
# and these terms, plus the embedding's and the constant $W_U[:, t]\cdot\beta + b_U[t]$, add up
# to the logit exactly.
#
# **Glossary.** `run[f"blocks.{l}.hook_attn_out"]`, `run[f"blocks.{l}.hook_mlp_out"]`: what block
# `l`'s attention and MLP add to the residual stream, `(batch, tokens, d_model)`; the readout is
# token 0. `hooked.W_U` is `(d_model, classes)`; `hooked.final_norm.weight` is $\gamma$ and
# `hooked.final_norm.eps` the LayerNorm's epsilon ($\sigma = \sqrt{\mathrm{var}(x) + \epsilon}$).

# %%
import torch

from utils.checks import check_component_dla, full_run, toy_pair

hooked, target, strike, gutter = toy_pair()
run = full_run(strike)


# %% [markdown]
# ## 2.1 · One term per component
#
# Return an `(n_layers, 2)` tensor: column 0 the attention output's DLA, column 1 the MLP's.

# %%
def component_dla(hooked, run, target: int) -> torch.Tensor:
    """DLA of each layer's attention (column 0) and MLP (column 1) output on the target logit,
    read at the CLS token through the final LayerNorm with its scale frozen: ``(n_layers, 2)``."""
    # SOLUTION
    final = run[f"blocks.{hooked.n_layers - 1}.hook_resid_post"][0, 0]
    sigma = torch.sqrt(final.var(unbiased=False) + hooked.final_norm.eps)
    u = hooked.W_U[:, target] * hooked.final_norm.weight / sigma  # (d_model,)
    out = torch.zeros(hooked.n_layers, 2)
    with torch.inference_mode():
        for layer in range(hooked.n_layers):
            for j, hook in enumerate(("hook_attn_out", "hook_mlp_out")):
                c = run[f"blocks.{layer}.{hook}"][0, 0]
                out[layer, j] = (c - c.mean()) @ u
    return out
    # END SOLUTION


check_component_dla(component_dla)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Compute $\sigma$ once, from the final residual's CLS vector. Then the direction
# $u = W_U[:, t] \odot \gamma / \sigma$ is shared by every component.
# </details>
#
# ## 2.2 · Does it add up?
#
# Add the embedding's term and the constant, and compare the sum with the model's logit
# (`run.logits[0, target]`). Which layer's MLP or attention contributes most? Compare with
# notebook 02's Fig. 2c.

# %%
dla = component_dla(hooked, run, target)
print(f"attention + MLP terms: {float(dla.sum()):.4f}; model logit: {float(run.logits[0, target]):.4f}")
print("largest term: layer", int(dla.abs().max(1).values.argmax()))
