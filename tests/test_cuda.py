"""The CUDA paths (`make gpu-check` runs these; without an NVIDIA GPU they skip).

Mixed precision through the training loop (bf16 autocast; fp16 autocast with its gradient
scaler), ``torch.compile`` and CUDA graphs against eager, DDP over NCCL in one process, and the
CPU fast path stepping aside on CUDA (our model equals the plain ATen reference there, and no
oneDNN op runs).
"""

from __future__ import annotations

import copy
import socket

import pytest
import torch
import torch.nn.functional as F

from mlpmixer.models import create_model
from mlpmixer.models.plain import PlainMixer
from mlpmixer.train import TrainConfig, train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)"),
]

MODEL = "mixer_t4_28"  # the digits model: seconds on any GPU


def _model_and_batch(batch: int = 8) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(MODEL).cuda()
    torch.nn.init.normal_(model.head.weight, std=0.02)  # the zero head would hide errors
    cfg = model.config
    images = torch.randn(batch, cfg.in_chans, *cfg.img_size, device="cuda")
    labels = torch.randint(0, cfg.num_classes, (batch,), device="cuda")
    return model, images, labels


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_runs_and_learns(tmp_path, precision):
    # fp16 goes through the loop's GradScaler; bf16 through autocast alone
    config = TrainConfig().replace(
        train={"device": "cuda", "precision": precision, "epochs": 3, "batch_size": 64},
        run={"out": str(tmp_path / precision), "tensorboard": False, "plot": False},
    )
    result = train(config)
    assert result.summary["test_top1"] > 0.3, result.summary  # 10 classes: chance is 0.1
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_grad_scaler_skips_an_overflowing_step_and_backs_off():
    model, images, labels = _model_and_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**40)  # overflows fp16 gradients
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cuda", dtype=torch.float16):
        loss = F.cross_entropy(model(images).float(), labels)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() < 2.0**40  # backed off
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_compile_matches_eager():
    model, images, _ = _model_and_batch()
    model.eval()
    with torch.no_grad():
        eager = model(images)
        compiled = torch.compile(model)(images)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


def test_cuda_graph_replay_matches_eager():
    model, images, _ = _model_and_batch()
    model.eval()
    static = images.clone()
    with torch.no_grad():
        eager = model(images)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up outside the graph (allocator, kernel choice)
                model(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model(static)
        static.copy_(images.flip(0))
        graph.replay()
        torch.testing.assert_close(out, model(images.flip(0)), rtol=1e-5, atol=1e-5)
        static.copy_(images)
        graph.replay()
        torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
        reduce_overhead = torch.compile(model, mode="reduce-overhead")
        for _ in range(3):  # compile, record, replay
            got = reduce_overhead(images).clone()
    torch.testing.assert_close(got, eager, rtol=1e-4, atol=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_nccl_available(),
    reason="this torch has no NCCL",
)
def test_nccl_ddp_in_one_process_gives_the_plain_gradients():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model, images, labels = _model_and_batch()
    reference = copy.deepcopy(model)
    dist.init_process_group(
        "nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        ddp = DistributedDataParallel(model, device_ids=[torch.cuda.current_device()])
        F.cross_entropy(ddp(images), labels).backward()
        torch.cuda.synchronize()
    finally:
        dist.destroy_process_group()
    F.cross_entropy(reference(images), labels).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("grad", [False, True])
def test_the_cpu_fast_path_steps_aside_on_cuda(grad):
    # on CUDA our model must be plain ATen: the same numbers as the plain reference, and no
    # oneDNN op (the CPU path's products) in the profile
    model, images, _ = _model_and_batch()
    plain = PlainMixer.from_model(model).cuda()
    model.train(grad)
    plain.train(grad)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.set_grad_enabled(grad), torch.profiler.profile(activities=activities) as prof:
        ours = model(images)
    with torch.set_grad_enabled(grad):
        theirs = plain(images)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    names = {e.name for e in prof.key_averages()}
    assert not [n for n in names if "mkldnn" in n or "onednn" in n.lower()], names
