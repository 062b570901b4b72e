import math

import pytest
import torch
from torch.nn import functional as F

from training.loss import InspectionLoss

GOOD_MASK = torch.tensor([False, True, False])  # classes: chipped, good, cracked
WEIGHTS = torch.tensor([1.0, 2.0, 1.0])


def test_without_the_term_it_is_the_class_weighted_cross_entropy():
    logits, target = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 1, 0, 2])
    loss = InspectionLoss(WEIGHTS, GOOD_MASK, 0.0)(logits, target)
    assert torch.allclose(loss, F.cross_entropy(logits, target, weight=WEIGHTS))


def test_the_term_is_the_weighted_negative_log_likelihood_of_good_versus_defect():
    logits = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 1.0]])
    target = torch.tensor([0, 1])  # a chip the model finds good-looking, a good item it finds defective
    p = F.softmax(logits, dim=1)
    chip_term, good_term = -math.log(1 - p[0, 1]), -math.log(p[1, 1])
    expected = F.cross_entropy(logits, target, weight=WEIGHTS) + 0.5 * (1.0 * chip_term + 2.0 * good_term) / 3.0
    assert torch.allclose(InspectionLoss(WEIGHTS, GOOD_MASK, 0.5)(logits, target), expected)


def test_a_confusion_between_defect_classes_costs_nothing_more():
    chip_called_crack = torch.tensor([[0.0, -4.0, 3.0]])
    target = torch.tensor([0])
    plain = InspectionLoss(WEIGHTS, GOOD_MASK, 0.0)(chip_called_crack, target)
    with_term = InspectionLoss(WEIGHTS, GOOD_MASK, 1.0)(chip_called_crack, target)
    assert with_term - plain < 0.05  # it is still a defect: the station rejects it either way


def test_the_term_needs_both_good_and_defect_classes():
    with pytest.raises(ValueError, match="good and one defect"):
        InspectionLoss(WEIGHTS, torch.tensor([False, False, False]), 1.0)
