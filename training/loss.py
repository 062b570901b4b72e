"""The training loss: class-weighted cross-entropy, plus a weighted good-versus-defect term.

The station decides on one number, the defect score 1 - P(good classes), at a threshold that lets
almost no defective item pass. That threshold is set by the few defective items the model finds
most good-looking, and every good item that scores above it is a false reject. Cross-entropy
alone spends as much on telling a chip from a crack as on telling a chip from a good tablet; the
second term trains the score the station acts on: -log P(defect) for a defective item, -log
P(good) for a good one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class InspectionLoss(nn.Module):
    def __init__(self, class_weights: torch.Tensor, good_mask: torch.Tensor, good_vs_defect_weight: float):
        super().__init__()
        if good_vs_defect_weight > 0 and (good_mask.all() or not good_mask.any()):
            raise ValueError("the good-versus-defect term needs at least one good and one defect class")
        self.register_buffer("class_weights", class_weights)
        self.register_buffer("good_mask", good_mask)
        self.good_vs_defect_weight = good_vs_defect_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target, weight=self.class_weights)
        if self.good_vs_defect_weight == 0:
            return loss
        log_total = torch.logsumexp(logits, dim=1)
        log_good = torch.logsumexp(logits[:, self.good_mask], dim=1) - log_total
        log_defect = torch.logsumexp(logits[:, ~self.good_mask], dim=1) - log_total
        negative_log_likelihood = torch.where(self.good_mask[target], -log_good, -log_defect)
        # Weighted like the cross-entropy, so that each class counts as much as it does there.
        sample_weights = self.class_weights[target]
        binary = (sample_weights * negative_log_likelihood).sum() / sample_weights.sum()
        return loss + self.good_vs_defect_weight * binary
