# %% [markdown]
# # Exercise 1 · The readout logit lens
#
# > **Difficulty** 🔴⚪⚪ · **Importance** 🔵🔵🔵 · **Time** about 15 minutes
# >
# > Builds on notebook 02 (`02_logit_lens`) and the paper's Fig. 2. You will be able to say what the
# > classifier would conclude if the network stopped after any block, and why the final
# > LayerNorm must come along.
#
# **The idea.** The classifier reads one vector, the *readout*: for ViViT the CLS token (token 0)
# of the last residual stream, normalised by the final LayerNorm. The residual stream after the
# embedding and after every block has the same shape, so we can apply the same readout to each:
#
# $$\text{logit}_\ell = W_U^{\top}\,\mathrm{LN}_{final}\!\left(x^{(\ell)}_{\text{CLS}}\right) + b_U,
# \qquad \ell = 0 \text{ (the embedding)}, 1, \dots, L.$$
#
# The last value is the model's own logit.
#
# **Glossary.** `hooked.run(pixels, names=...)` returns a `Run`; `run["hook_embed"]` and
# `run[f"blocks.{l}.hook_resid_post"]` are `(batch, tokens, d_model)`; `hooked.final_norm` is the
# final LayerNorm, `hooked.adapter.classifier` the linear classifier.

# %%
import torch

from utils.checks import check_readout_logit_lens, full_run, toy_pair

hooked, target, strike, gutter = toy_pair()  # the toy ViViT, 'bowling', the canonical pair
run = full_run(strike)
print(f"{hooked.n_layers} blocks, {hooked.n_tokens} tokens, d_model = {hooked.d_model}")


# %% [markdown]
# ## 1.1 · Write the lens
#
# Return a tensor of `n_layers + 1` target logits: after the embedding, then after each block.

# %%
def readout_logit_lens(hooked, run, target: int) -> torch.Tensor:
    """Target logit of the final LayerNorm + classifier on the CLS token after the embedding and
    after every block: ``(n_layers + 1,)``."""
    # SOLUTION
    names = ["hook_embed"] + [f"blocks.{layer}.hook_resid_post" for layer in range(hooked.n_layers)]
    cls = torch.stack([run[name][0, 0] for name in names])  # (layer, d_model): token 0 of run 0
    with torch.inference_mode():
        return hooked.adapter.classifier(hooked.final_norm(cls))[:, target]
    # END SOLUTION


check_readout_logit_lens(readout_logit_lens)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Stack the CLS vectors first (`run[name][0, 0]`), then one call of the LayerNorm and one of the
# classifier handles every layer at once.
# </details>
#
# ## 1.2 · What do you see?
#
# Plot the lens for the strike and the gutter clip. Where does the bowling logit rise? Do the
# two clips part before the last layers? Compare with notebook 02's Fig. 2.

# %%
lens_strike = readout_logit_lens(hooked, run, target)
lens_gutter = readout_logit_lens(hooked, full_run(gutter), target)
print("layer  strike  gutter")
for layer, (a, b) in enumerate(zip(lens_strike.tolist(), lens_gutter.tolist(), strict=True)):
    print(f"{layer:5d}  {a:6.2f}  {b:6.2f}")
