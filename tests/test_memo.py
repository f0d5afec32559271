"""utils.memo: one kernel's notebooks share results; a shared result equals a fresh one."""

import pandas as pd
import torch
from conftest import tiny_loaded

from utils import memo
from utils.hooks import HookedVideoTransformer
from utils.pairs import analyse_pair


def test_a_stored_result_is_a_copy_and_keys_tell_inputs_apart():
    memo.clear()
    calls = []

    def compute():
        calls.append(1)
        return {"t": pd.DataFrame({"a": [1.0]})}

    first = memo.memoized(("k", 1), compute)
    first["t"].loc[0, "a"] = 99.0  # the caller edits its copy
    again = memo.memoized(("k", 1), compute)
    assert len(calls) == 1 and again["t"].a.item() == 1.0
    memo.memoized(("k", 2), compute)
    assert len(calls) == 2 and memo.stats == {"hits": 1, "misses": 2}
    x = torch.zeros(3)
    y = x.clone()
    y[0] = 1e-30
    assert memo.tensor_fingerprint(x) == memo.tensor_fingerprint(torch.zeros(3))
    assert memo.tensor_fingerprint(x) != memo.tensor_fingerprint(y)
    assert memo.tensor_fingerprint(x) != memo.tensor_fingerprint(x.double())


def test_model_fingerprint_changes_with_any_weight(tiny):
    model = tiny.model
    before = memo.model_fingerprint(model)
    assert memo.model_fingerprint(model) == before
    other = type(model)(model.config).eval()
    other.load_state_dict(model.state_dict())
    assert memo.model_fingerprint(other) == before
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-6
    memo._MODEL_PRINTS.pop(other)
    assert memo.model_fingerprint(other) != before


def test_a_memoized_pair_analysis_equals_a_fresh_one(tiny_pixels):
    memo.clear()
    hooked = HookedVideoTransformer(tiny_loaded())
    px = {"strike": tiny_pixels[:1], "gutter": tiny_pixels[1:]}
    fresh = analyse_pair(hooked, px, 0, "p", "matched", ablation=False)
    shared = analyse_pair(hooked, px, 0, "p", "matched", ablation=False)
    assert memo.stats["hits"] == 1
    for k in fresh:
        pd.testing.assert_frame_equal(fresh[k], shared[k])
    other = analyse_pair(hooked, {"strike": px["gutter"], "gutter": px["strike"]}, 0, "p", "matched", ablation=False)
    assert memo.stats["misses"] == 2 and not other["patching"].equals(fresh["patching"])
