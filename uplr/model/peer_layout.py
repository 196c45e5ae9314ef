"""A random-weights file in the peers' init layout, for dry runs without the real ImageNet init.

ADVENT and AdaptSegNet start DeepLab-v2 ResNet-101 from ``DeepLab_resnet_pretrained_imagenet.pth``:
every key carries the ``Scale.`` prefix and the file holds a classifier (``layer5``) for another label
set (:mod:`uplr.model.weights` skips it). :func:`write_random_peer_init` writes a file of that layout
from a key -> shape table (tests/fixtures/deeplabv2_r101_layout.json, ``deeplabv2_single_level``:
compiled from the peers' code, independently of our model), so loading it exercises the same path as
the real file. The values are random: a model trained from it learns nothing useful.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from uplr.io import atomic_path

PREFIX = "Scale."
FOREIGN_CLASSES = 21  # the classifier of the peers' init is for another label set


def random_peer_state(layout: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every backbone key of ``layout``, prefixed, plus a classifier for another label set.

    Convolutions: N(0, (0.5 * sqrt(2 / fan_in))^2) (small enough that 33 residual blocks with frozen
    BatchNorm stay finite); BatchNorm: weight 1, bias 0, running mean 0, running variance 1.
    """
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if key.startswith(("layer5.", "layer6.")):  # the classifiers: the peers' file has a foreign one
            continue
        if key.endswith("num_batches_tracked"):
            t = torch.zeros((), dtype=torch.long)
        elif key.endswith(("running_var",)) or (key.endswith(".weight") and len(shape) == 1):
            t = torch.ones(shape)
        elif key.endswith(("running_mean", ".bias")):
            t = torch.zeros(shape)
        else:
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=gen) * (0.5 * math.sqrt(2.0 / fan_in))
        state[PREFIX + key] = t
    for i in range(4):  # ASPP branches of the foreign classifier
        state[f"{PREFIX}layer5.conv2d_list.{i}.weight"] = torch.randn(FOREIGN_CLASSES, 2048, 3, 3, generator=gen) * 0.01
        state[f"{PREFIX}layer5.conv2d_list.{i}.bias"] = torch.zeros(FOREIGN_CLASSES)
    return state


def write_random_peer_init(path: str | Path, layout_json: str | Path, seed: int = 0) -> Path:
    """Write :func:`random_peer_state` of the single-level layout in ``layout_json`` to ``path``."""
    layout = json.loads(Path(layout_json).read_text())["deeplabv2_single_level"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(random_peer_state(layout, seed), tmp)
    return path
