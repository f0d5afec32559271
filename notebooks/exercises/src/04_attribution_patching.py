# %% [markdown]
# # Exercise 4 · Attribution patching over heads
#
# > **Difficulty** 🔴🔴🔴 · **Importance** 🔵🔵⚪ · **Time** about 40 minutes
# >
# > Builds on exercise 3 and notebook 06 (head patching) and leads into notebook 08. You will be
# > able to estimate the effect of patching all 144 heads from one forward and one backward pass,
# > and say where that first-order estimate can be trusted.
#
# **The idea.** Exact patching of every head costs one run per head. Attribution patching (AtP;
# Nanda 2023, Kramár et al. 2024) replaces each run by a first-order Taylor estimate around the
# *target* run: for a metric $M$ of the final residual and a head whose output (`hook_z`,
# `(tokens, head, d_head)`) is $z$,
#
# $$\widehat{\Delta M}_{h} = \sum_{\text{tokens}, d_{head}} (z^{source}_h - z^{target}_h)\,
#   \frac{\partial M}{\partial z_h}\Big|_{target}.$$
#
# The metric here is the readout projection: $M = 100\,(r - r_{target})\cdot(r_{source} - r_{target}) /
# \lVert r_{source} - r_{target}\rVert^2$ with $r$ the CLS token of the final residual: 0 on the
# target (gutter) run, 100 on the source (strike) run.
#
# **Glossary.** `hooked.run(..., grad=True)` keeps autograd on. The toy model's weights do not
# require gradients here, so the run must start from a tensor that does:
# `hooked.run(start=("blocks.0.hook_resid_pre", x0.clone().requires_grad_(True)), names=..., grad=True)`
# with `x0` the target run's `blocks.0.hook_resid_pre`. `torch.autograd.grad(M, [activations])`
# returns the gradients.

# %%
import torch

from utils import atp
from utils.checks import check_head_attribution, full_run, readout_metric, toy_pair
from utils.patching import head_patches

hooked, target_class, strike, gutter = toy_pair()
source_run, target_run = full_run(strike), full_run(gutter)
metric = readout_metric(hooked, source_run, target_run)


# %% [markdown]
# ## 4.1 · Every head from one backward pass

# %%
def head_attribution(hooked, source_run, target_run, target_pixels, metric) -> torch.Tensor:
    """AtP of every head, ``(n_layers, n_heads)``: ``sum over tokens and d_head of
    (z_source - z_target) * dM/dz`` at the target run, for ``z`` each layer's ``attn.hook_z``."""
    # SOLUTION
    L = hooked.n_layers
    sites = [f"blocks.{layer}.attn.hook_z" for layer in range(L)]
    final = f"blocks.{L - 1}.hook_resid_post"
    x0 = target_run["blocks.0.hook_resid_pre"].clone().requires_grad_(True)
    run = hooked.run(start=("blocks.0.hook_resid_pre", x0), names=set(sites) | {final}, grad=True)
    grads = torch.autograd.grad(metric(run[final]).sum(), [run[s] for s in sites])
    out = torch.zeros(L, hooked.n_heads)
    for layer, (site, g) in enumerate(zip(sites, grads, strict=True)):
        diff = source_run[site][0] - target_run[site][0]  # (tokens, head, d_head)
        out[layer] = (diff * g[0]).sum(dim=(0, 2))
    return out
    # END SOLUTION


check_head_attribution(head_attribution)

# %% [markdown]
# ## 4.2 · How good is the estimate?
#
# Exact patching of every head (`atp.exact`, one partial run per head, a few seconds on the toy)
# beside your estimate. Where do they agree, and which heads does AtP rank among the ten largest?
# Notebook 08 makes the same comparison over 20 pairs (Table 18).

# %%
estimate = head_attribution(hooked, source_run, target_run, gutter, metric)
exact = atp.exact(hooked, head_patches(hooked, source_run.cache), metric, target_run.cache).reshape(estimate.shape)
rho = torch.corrcoef(torch.stack([estimate.flatten().argsort().argsort().double(),
                                  exact.flatten().argsort().argsort().double()]))[0, 1]
print(f"Spearman rank correlation over {exact.numel()} heads: {rho:.3f}")
top = exact.abs().flatten().topk(10).indices
print("ten largest exact effects (layer, head, exact, AtP):")
for i in top.tolist():
    layer, head = divmod(i, hooked.n_heads)
    print(f"  L{layer}H{head}: {float(exact[layer, head]):8.3f} {float(estimate[layer, head]):8.3f}")

# %% [markdown]
# ## 4.3 · Where it fails, and what to do
#
# A head's output reaches the readout through later LayerNorms and softmaxes, so AtP is exact
# only where the metric is linear in the node (the last layer's heads: check it above). A node
# written into `resid_pre` meets its own layer's softmax first, and a saturated softmax has a
# flat gradient: notebook 08 shows AtP ranking time steps much worse than heads. Kramár et al.'s
# AtP\* recomputes that softmax exactly (the *QK fix*: `atp.atp_qk_fix`) and drops the gradient
# through each later block in turn (*GradDrop*: `atp.atp_star`) so that cancelling paths cannot
# hide a node. **Question:** why does the QK fix change nothing for heads' `hook_z`? (Answer: `z`
# is computed *after* its own softmax, so patching it never moves that softmax.)
