"""Results shared between notebooks that run in one kernel (``make figures``).

``utils.runner`` runs every notebook in one Jupyter kernel and clears the namespace between
them, but imported modules survive: a result stored here by notebook 06 (say, the patching of
one pair) is handed to notebook 07 or 08 when they ask for the same computation, instead of
being computed again. Run on its own, a notebook computes everything itself; the numbers are
the same either way (``tests/test_memo.py``).

A key names the computation and fingerprints what it depends on: the model's weights
(``model_fingerprint``: the sha256 of every parameter and buffer, computed once per model
object), the input tensors (``tensor_fingerprint``), and the arguments. Stored values are
copied on the way in and out, so a caller that edits its result cannot change another's.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import torch

T = TypeVar("T")
MAX_ENTRIES = 512  # least recently used entries go first
_STORE: OrderedDict[Hashable, object] = OrderedDict()
_MODEL_PRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
stats = {"hits": 0, "misses": 0}


def tensor_fingerprint(x: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (on the CPU)."""
    h = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer of ``model``, computed once per model object
    (weights edited in place afterwards are not noticed: notebooks load their model afresh)."""
    if model in _MODEL_PRINTS:
        return _MODEL_PRINTS[model]
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor_fingerprint(t).encode())
    _MODEL_PRINTS[model] = h.hexdigest()
    return _MODEL_PRINTS[model]


def memoized(key: tuple, compute: Callable[[], T]) -> T:
    """``compute()``, or a copy of the result stored under ``key`` by an earlier call."""
    if key in _STORE:
        stats["hits"] += 1
        _STORE.move_to_end(key)
        return copy.deepcopy(_STORE[key])
    stats["misses"] += 1
    value = compute()
    _STORE[key] = copy.deepcopy(value)
    while len(_STORE) > MAX_ENTRIES:
        _STORE.popitem(last=False)
    return value


def clear() -> None:
    """Forget every stored result (and the hit / miss counts)."""
    _STORE.clear()
    stats.update(hits=0, misses=0)
