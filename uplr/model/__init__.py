"""DeepLab-v2 (ResNet-101 or the light CPU trunk), the discriminators, weight files."""
