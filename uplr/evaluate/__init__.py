"""Scoring: confusion matrices, IoU, inference over a split, pseudo-label quality."""
