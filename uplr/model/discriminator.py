"""AdaptSegNet's fully-convolutional output-space discriminator.

Five 4x4 convolutions with stride 2 and padding 1, widths ndf, 2ndf, 4ndf, 8ndf, 1, LeakyReLU(0.2)
after the first four. The input is a softmax map with ``num_classes`` channels; the output is one
domain logit per location at 1/32 of the input size (no sigmoid: pair it with a BCE-with-logits loss).
"""

from __future__ import annotations

from torch import Tensor, nn


class FCDiscriminator(nn.Module):
    """Patch discriminator over class-probability maps."""

    def __init__(self, num_classes: int, ndf: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_classes, ndf, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, 4, stride=2, padding=1)
        self.classifier = nn.Conv2d(ndf * 8, 1, 4, stride=2, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.act(conv(x))
        return self.classifier(x)


def build_discriminator(num_classes: int, ndf: int = 64) -> FCDiscriminator:
    """The discriminator for ``num_classes``-channel softmax maps, base width ``ndf``."""
    return FCDiscriminator(num_classes, ndf)
