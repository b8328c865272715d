"""The weight EMA (train/ema.py, on torch's AveragedModel) against an independent
computation of ema = decay · ema + (1 − decay) · weights, and its save/restore."""

from __future__ import annotations

import torch
from torch import nn

from mlpmixer.train.ema import ModelEma


def _model() -> nn.Module:
    torch.manual_seed(0)  # BatchNorm: float buffers and an integer one (num_batches_tracked)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))


def _train_step(model: nn.Module, generator: torch.Generator) -> None:
    """Moves every parameter and buffer (BatchNorm statistics in train mode)."""
    model.train()
    model(torch.randn(5, 4, generator=generator))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator))


def test_the_ema_follows_the_formula_from_the_first_step_and_copies_buffers():
    """From the first update on: AveragedModel's own rule copies the weights at its first
    update, but a run's EMA has averaged from the start (run directories hold that average)."""
    model, decay = _model(), 0.8
    ema = ModelEma(model, decay)
    reference = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(1)
    for _ in range(6):
        _train_step(model, generator)
        ema.update(model)
        for name, p in model.named_parameters():  # the average starts at the initial weights
            reference[name] = decay * reference[name] + (1 - decay) * p.detach().double()
    got = dict(ema.module.named_parameters())
    for name, want in reference.items():
        assert torch.allclose(got[name].double(), want, rtol=1e-6, atol=1e-6), name
        assert not torch.equal(got[name], dict(model.named_parameters())[name]), name
    for (name, b_ema), b_live in zip(ema.module.named_buffers(), model.buffers(), strict=True):
        assert torch.equal(b_ema, b_live), name  # buffers copied as they are, not averaged
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training


def test_saved_state_has_the_models_names_and_a_restored_ema_continues_bitwise():
    model, generator = _model(), torch.Generator().manual_seed(2)
    ema = ModelEma(model, 0.9)
    for _ in range(3):
        _train_step(model, generator)
        ema.update(model)
    saved = {k: v.clone() for k, v in ema.state_dict().items()}
    assert saved.keys() == model.state_dict().keys()  # last.pt['ema'] of old run directories
    restored = ModelEma(model, 0.9)
    restored.load_state_dict(saved)
    for _ in range(3):
        _train_step(model, generator)
        ema.update(model)
        restored.update(model)
    state, again = ema.state_dict(), restored.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
