"""DeepLab-v2 segmentation network in the ADVENT/AdaptSegNet state_dict layout, plus a light trunk.

The ResNet-101 variant reproduces the parameter names and shapes of ADVENT's ``get_deeplab_v2`` and
AdaptSegNet's ``DeeplabMulti`` (its state_dict layout: ``tests/fixtures/deeplabv2_r101_layout.json``), so the
init weights and released checkpoints of those projects load into it. Architecture facts carried over:
caffe-style bottlenecks (the stride sits in the first 1x1 conv), a ceil-mode max-pool, dilation 2 in
layer3 and 4 in layer4 (output stride 8), and ASPP heads of four dilated 3x3 convs whose outputs are
summed: ``layer5`` on layer3 (auxiliary, multi-level only) and ``layer6`` on layer4 (main).

``trunk="resnet18"`` swaps in BasicBlocks [2, 2, 2, 2] with the same dilation scheme and heads, small
enough to train from scratch on a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from torch import Tensor, nn

from uplr.errors import UplrError

log = logging.getLogger(__name__)

ASPP_DILATIONS: tuple[int, ...] = (6, 12, 18, 24)
# name -> (block kind, blocks per stage, width of the first stage; stages double it)
TRUNKS: dict[str, tuple[str, tuple[int, int, int, int], int]] = {
    "resnet101": ("bottleneck", (3, 4, 23, 3), 64),
    "resnet18": ("basic", (2, 2, 2, 2), 64),
    # the embedded benchmark's CPU trunk: ResNet-18's topology at half width (~4x fewer FLOPs)
    "resnet18_half": ("basic", (2, 2, 2, 2), 32),
}
HEAD_NAMES: tuple[str, ...] = ("layer5", "layer6")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=True)


class Bottleneck(nn.Module):
    """1x1 (stride) -> 3x3 (dilated) -> 1x1 residual block, caffe-style: the stride is in ``conv1``."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


class BasicBlock(nn.Module):
    """Two 3x3 convs (both dilated), the stride in the first; the light trunk's block."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class ClassifierModule(nn.Module):
    """ASPP head: parallel 3x3 convs with dilation = padding = 6, 12, 18, 24, outputs summed (ADVENT).

    ``all_branches=False`` reproduces AdaptSegNet's ``Classifier_Module.forward`` (wasidennis/AdaptSegNet
    model/deeplab_multi.py), whose ``return`` sits inside the summation loop: it returns after adding the
    second branch, so only the dilation-6 and dilation-12 convs contribute; 18 and 24 are dead weights
    that stay in the state_dict.
    """

    def __init__(self, inplanes: int, num_classes: int, dilations: tuple[int, ...] = ASPP_DILATIONS,
                 all_branches: bool = True) -> None:
        super().__init__()
        self.all_branches = all_branches
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(inplanes, num_classes, 3, padding=d, dilation=d, bias=True) for d in dilations
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def active_branches(self) -> int:
        """How many branches (from the first) the forward sums."""
        return len(self.conv2d_list) if self.all_branches else min(2, len(self.conv2d_list))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2d_list[0](x)
        for conv in list(self.conv2d_list)[1:self.active_branches()]:
            out = out + conv(x)
        return out


class SegModel(nn.Module):
    """DeepLab-v2: stem, four residual stages (output stride 8), ASPP heads on layer3 and layer4.

    ``forward`` returns ``(aux, main)`` logits at 1/8 of the input size (exactly: the size after a
    stride-2 7x7 conv, a ceil-mode 3x3/2 max-pool and a stride-2 1x1 conv); ``aux`` is None when
    single-level. The caller upsamples.
    """

    def __init__(self, trunk: str = "resnet18", num_classes: int = 19, multi_level: bool = True,
                 aspp_all_branches: bool = True, freeze_bn: bool = False) -> None:
        super().__init__()
        if trunk not in TRUNKS:
            raise UplrError(f"model.trunk: unknown trunk {trunk!r}; valid trunks are {sorted(TRUNKS)}")
        kind, blocks, w = TRUNKS[trunk]
        block: type[Bottleneck] | type[BasicBlock] = Bottleneck if kind == "bottleneck" else BasicBlock
        self.trunk = trunk
        self.num_classes = num_classes
        self.multi_level = multi_level
        self.freeze_bn = freeze_bn

        self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = _bn(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self._inplanes = w
        self.layer1 = self._make_layer(block, w, blocks[0])
        self.layer2 = self._make_layer(block, 2 * w, blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * w, blocks[2], dilation=2)
        c3 = self._inplanes
        self.layer4 = self._make_layer(block, 8 * w, blocks[3], dilation=4)
        c4 = self._inplanes
        self.layer5 = (ClassifierModule(c3, num_classes, all_branches=aspp_all_branches)
                       if multi_level else None)
        self.layer6 = ClassifierModule(c4, num_classes, all_branches=aspp_all_branches)
        self._init_backbone()
        if freeze_bn:
            for bn in self._batchnorms():
                for p in bn.parameters():
                    p.requires_grad_(False)

    def _make_layer(self, block: type[Bottleneck] | type[BasicBlock], planes: int, n: int, stride: int = 1,
                    dilation: int = 1) -> nn.Sequential:
        out = planes * block.expansion
        downsample = None
        # AdaptSegNet/ADVENT also project on every dilated stage's first block.
        if stride != 1 or self._inplanes != out or dilation > 1:
            downsample = nn.Sequential(nn.Conv2d(self._inplanes, out, 1, stride=stride, bias=False), _bn(out))
        layers = [block(self._inplanes, planes, stride, dilation, downsample)]
        self._inplanes = out
        layers += [block(out, planes, 1, dilation) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def _init_backbone(self) -> None:
        """He init for the trunk's convs (so scratch training works); BN scale 1, shift 0."""
        for name, m in self.named_modules():
            if name.split(".")[0] in HEAD_NAMES:
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _batchnorms(self) -> Iterator[nn.modules.batchnorm._BatchNorm]:
        return (m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def train(self, mode: bool = True) -> SegModel:
        """Like ``nn.Module.train``, but frozen BN layers stay in eval mode (fixed running statistics)."""
        super().train(mode)
        if self.freeze_bn:
            for bn in self._batchnorms():
                bn.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        aux = self.layer5(x) if self.layer5 is not None else None
        main = self.layer6(self.layer4(x))
        return aux, main

    def heads(self) -> list[nn.Module]:
        return [m for m in (self.layer5, self.layer6) if m is not None]

    def param_groups(self, lr: float, head_lr_mult: float = 10.0) -> list[dict]:
        """Optimizer groups: trainable backbone params at ``lr``, the ASPP heads at ``lr * head_lr_mult``.

        Each group carries ``lr_mult`` so a poly scheduler can set ``group["lr"] = base_lr * lr_mult``.
        """
        head_ids = {id(p) for h in self.heads() for p in h.parameters()}
        backbone = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        heads = [p for h in self.heads() for p in h.parameters() if p.requires_grad]
        groups = [
            {"params": backbone, "lr": lr, "lr_mult": 1.0, "name": "backbone"},
            {"params": heads, "lr": lr * head_lr_mult, "lr_mult": head_lr_mult, "name": "heads"},
        ]
        return [g for g in groups if g["params"]]


def build_model(trunk: str, num_classes: int = 19, multi_level: bool = True, aspp_all_branches: bool = True,
                freeze_bn: bool = False) -> SegModel:
    """Build the segmentation network; ``trunk`` is ``resnet101`` (paper) or ``resnet18`` (CPU runs)."""
    model = SegModel(trunk, num_classes, multi_level, aspp_all_branches, freeze_bn)
    n = sum(p.numel() for p in model.parameters())
    log.debug("built DeepLab-v2 %s (%d classes, multi_level=%s, aspp_all_branches=%s, freeze_bn=%s): "
              "%.1fM params", trunk, num_classes, multi_level, aspp_all_branches, freeze_bn, n / 1e6)
    return model

