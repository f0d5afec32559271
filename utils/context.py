"""What every analysis notebook opens with, in one call.

    loaded, hooked, out, data = open_analysis(profile, output_dir, data_dir, device=device,
                                              target_class=target_class)

loads the profile's model on the chosen device with the analysed class resolved
(``utils.models.load_model``), wraps it in ``HookedVideoTransformer``, creates the output folder and
loads what notebook 00 prepared (``utils.data.load_prepared``); it prints one line about the
model and the note every table carries (clips not classified as the target, pixel range fed).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from utils import paths
from utils.data import Prepared, load_prepared
from utils.hooks import HookedVideoTransformer
from utils.io import ensure_writable_dir
from utils.models import LoadedModel, load_model
from utils.train import SEED_SPREAD


def paper_scale_cpu(hooked: HookedVideoTransformer) -> bool:
    """A model of ViViT-B's size (thousands of tokens: 3137 x 768 for ViViT-B) on a CPU, where
    one forward pass takes ~16 s on 2 cores: the notebooks' costly extras default to lighter
    settings there (``auto_setting``); toy profiles and GPUs get the full ones."""
    return hooked.device.type == "cpu" and hooked.n_tokens * hooked.d_model > 512 * 512


AUTO = -1  # a notebook parameter's "automatic" value


# action-only toy ViViTs whose notebook 09 runs the controls: the toy and its seed spread (utils.train.SEED_SPREAD)
NULL_PAIR_PROFILES = ("toy", *(f"toy-seed{seed}" for seed in SEED_SPREAD))
FULL_PROFILES = ("toy", "toy-outcome")  # run in full on a CPU: the toy and its positive control (circuits side by side)


def auto_setting(name: str, value, full, light=None, hooked: HookedVideoTransformer | None = None, what: str = "",
                 profile: str | None = None, other=None):
    """The one place a notebook parameter's ``-1`` (``AUTO``) is resolved; any other value is
    taken as given. Automatic means ``full``, except:

    * ``light`` for a paper-scale model on a CPU (``paper_scale_cpu(hooked)``);
    * ``other`` for a ``profile`` other than ``FULL_PROFILES`` on a CPU (notebook 08 keeps the
      other toy models' ``make figures`` within budget).

    A reduced setting is printed with how to get the full one, never silent."""
    if value != AUTO:
        return value
    if light is not None and hooked is not None and paper_scale_cpu(hooked):
        chosen, why = light, f"this {hooked.n_tokens}-token model runs on a CPU"
    elif other is not None and hooked is not None and profile not in FULL_PROFILES and hooked.device.type == "cpu":
        chosen, why = other, f"profile {profile!r} on a CPU keeps its make figures budget"
    else:
        return full
    if chosen != full:
        print(f"{name} = {chosen}{f' ({what})' if what else ''}: reduced because {why}; for the full version set "
              f"the parameter {name} = {full} (or run on a GPU)")
    return chosen


def is_toy(profile: str) -> bool:
    """A model trained here on the synthetic world (``utils.profiles.TOY_DIRS``)."""
    from utils.profiles import TOY_DIRS

    return profile in TOY_DIRS


class Analysis(NamedTuple):
    loaded: LoadedModel  # the model, its processor, target class and device
    hooked: HookedVideoTransformer  # named, patchable activations
    out: Path  # figures and tables of this run
    data: Prepared  # clips, tensors and manifest from notebook 00


def open_analysis(profile: str, output_dir: str = "", data_dir: str = "", *, device: str = "auto",
                  target_class: str | int = "bowling", preprocess: str = "checkpoint") -> Analysis:
    """Model, hooked model, output folder and prepared data of one notebook run."""
    data = load_prepared(data_dir or paths.data_dir(profile))
    loaded = load_model(profile, target=target_class, device=device, preprocess=preprocess)
    prepared_target = data.manifest.get("target_index")
    if prepared_target is not None and int(prepared_target) != loaded.target_index:
        raise ValueError(
            f"target_class={target_class!r} resolves to class {loaded.target_index} "
            f"({loaded.target_label!r}), but notebook 00 prepared the clips "
            f"for class {prepared_target} ({data.manifest.get('target')!r}); run every notebook "
            "with the same TARGET (make figures does)")
    prepared_mode = data.manifest.get("preprocess")
    if prepared_mode is not None and prepared_mode != loaded.preprocess_mode:
        raise ValueError(f"preprocess={preprocess!r}, but notebook 00 prepared the clips with "
                         f"PREPROCESS={prepared_mode}; run every notebook with the same PREPROCESS")
    hooked = HookedVideoTransformer(loaded)
    out = ensure_writable_dir(output_dir or paths.figures_dir(profile))
    print(f"model: {loaded.name} on {loaded.device}, {loaded.n_layers} layers x {loaded.n_heads} heads, "
          f"{hooked.n_tokens} tokens; target class {loaded.target_index} = {loaded.target_label!r}")
    print(data.note())
    return Analysis(loaded, hooked, out, data)
