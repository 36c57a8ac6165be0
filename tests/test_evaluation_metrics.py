"""The PointFlow shape metrics of training/evaluate.py on point sets whose answer is known."""

import torch

from training.evaluate import shape_metrics


def test_shape_metrics_tell_sets_apart():
    gen = torch.Generator().manual_seed(0)
    cloud = [torch.rand(64, 3, generator=gen) for _ in range(6)]
    near = [c + 0.001 * torch.randn(64, 3, generator=gen) for c in cloud]
    far = [cloud[0] + 5.0 + 0.001 * torch.randn(64, 3, generator=gen) for _ in cloud]
    # Samples that are copies of the references: each one's nearest neighbour is its twin from the other set.
    same = shape_metrics(near, cloud)
    assert same["COV"] == 1.0 and same["1-NNA"] == 0.0 and same["MMD"] < 1e-4
    # Samples that are all one shape far from every reference (mode collapse): they cover one reference, and
    # the two sets separate fully.
    apart = shape_metrics(far, cloud)
    assert apart["COV"] == 1 / 6 and apart["1-NNA"] == 1.0 and apart["MMD"] > 10.0
