"""The convolutional refiner (rodin_core.refiner)."""

import pytest
import torch
import torch.nn.functional as F

from rodin_core.refiner import ImageRefiner, RefinerConfig


def test_untrained_refiner_returns_its_input():
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(ImageRefiner(RefinerConfig(width=8, depth=2))(images), images)


def test_training_steps_reduce_the_loss_on_a_tiny_set():
    torch.manual_seed(0)
    renders = torch.rand(8, 3, 16, 16)
    reals = (renders - renders.mean(dim=(2, 3), keepdim=True)) * 1.5 + 0.5  # more contrast: a "sharper" view
    reals = reals.clamp(0, 1)
    model = ImageRefiner(RefinerConfig(width=16, depth=2))
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = F.l1_loss(model(renders), reals).item()
    for _ in range(150):
        loss = F.l1_loss(model(renders), reals)
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert F.l1_loss(model(renders), reals).item() < 0.6 * before


def test_refiner_explains_wrong_input():
    model = ImageRefiner(RefinerConfig(width=4, depth=1))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="at least 1"):
        ImageRefiner(RefinerConfig(width=0))
    image = torch.rand(16, 16, 3)
    assert torch.equal(model.refine(image), image)
