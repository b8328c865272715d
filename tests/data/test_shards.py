"""WebDataset shards: pack -> read equals the folder data set, the epoch order, HTTP, bad shards."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import socket
import subprocess
import sys
import tarfile

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from mlpmixer.cli import cli
from mlpmixer.data import build_dataset
from mlpmixer.data.pack import pack_shards
from mlpmixer.data.shards import EpochOrder, GlobalBatchStream, ShardStream
from mlpmixer.errors import ConfigError, DataError, DownloadError
from shard_helpers import CLASSES, make_shards, make_tree, serve


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))


def _items(dataset):
    """Sorted (label, image bytes) of every item: a data set's content, whatever its order."""
    return sorted((y, x.numpy().tobytes()) for x, y in (dataset[i] for i in range(len(dataset))))


@pytest.mark.parametrize("split", ["train", "test"])
def test_pack_then_read_gives_the_folder_data_set(shards, split):
    folder, folder_info = build_dataset(shards.parent / "src", split, img_size=8)
    packed, info = build_dataset(shards, split, img_size=8)
    assert info.class_names == folder_info.class_names == CLASSES
    assert len(packed) == len(folder) == info.num_examples == (36 if split == "train" else 9)
    assert _items(packed) == _items(folder)  # the same decoded images with the same labels


def test_the_index_records_every_shard_and_webdataset_reads_them(shards):
    index = json.loads((shards / "index.json").read_text())
    assert index["class_names"] == list(CLASSES)
    entries = index["splits"]["train"]
    assert [e["count"] for e in entries] == [5] * 7 + [1]
    for entry in entries:
        data = (shards / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    webdataset = pytest.importorskip("webdataset")
    urls = [str(shards / e["name"]) for e in entries]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False))
    assert len(samples) == 36 and all(("png" in s or "jpg" in s) and "cls" in s for s in samples)
    labels = sorted(int(s["cls"]) for s in samples)
    assert labels == sorted([0, 1, 2] * 12)
    # packing shuffles, so a shard mixes classes even though the folders are sorted by class
    assert len({int(s["cls"]) for s in samples[:5]}) > 1


def test_packing_is_reproducible(tmp_path):
    tree = make_tree(tmp_path / "src", per_class=3)
    first = pack_shards(str(tree), tmp_path / "a", samples_per_shard=4)
    second = pack_shards(str(tree), tmp_path / "b", samples_per_shard=4)
    assert first["splits"] == second["splits"]  # byte-identical shards (same SHA-256)


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_epoch_order_is_a_permutation_seeded_by_seed_and_epoch(shuffle):
    counts = [5, 3, 7, 1]
    orders = {}
    for seed, epoch in [(0, 0), (0, 1), (1, 0), (0, 0)]:
        order = EpochOrder(counts, seed, epoch, shuffle)
        seen = [order.locate(p) for p in range(len(order))]
        assert sorted(seen) == sorted((s, r) for s, n in enumerate(counts) for r in range(n))
        orders.setdefault((seed, epoch), seen)
        assert orders[(seed, epoch)] == seen  # the same for the same (seed, epoch)
    distinct = {tuple(v) for v in orders.values()}
    assert len(distinct) == (3 if shuffle else 1)


def _stream_positions(n, world, micro, per_rank, start=0):
    """The epoch positions each rank's stream reads, in order (without decoding)."""
    out = []
    for rank in range(world):
        stream = ShardStream.__new__(ShardStream)
        ShardStream.__init__(stream, type("D", (), {"counts": [n]})(), seed=0, shuffle=True,
                             rank=rank, world_size=world, micro_batch=micro, per_rank=per_rank)  # fmt: skip
        out.append([p for i in range(start, stream.num_micro) for p in stream.positions(i)])
    return out


@pytest.mark.parametrize("world", [1, 2, 4])
def test_ranks_read_disjoint_parts_and_every_sample_once(world):
    batch, n = 24, 1000  # 41 steps of 24; the last 16 positions of the epoch are dropped
    steps = n // batch
    per_rank = steps * batch // world
    parts = _stream_positions(n, world, batch // world, per_rank)
    flat = [p for part in parts for p in part]
    assert sorted(flat) == list(range(steps * batch))  # each position once, across ranks
    for rank, part in enumerate(parts):  # a rank's part is one contiguous run of the epoch
        assert min(part) == rank * per_rank and max(part) == (rank + 1) * per_rank - 1


def test_a_resumed_stream_continues_at_the_exact_sample(shards):
    dataset, _ = build_dataset(shards, "train", img_size=8)
    stream = ShardStream(dataset, seed=3, shuffle=True, rank=0, world_size=1, micro_batch=4,
                         per_rank=36)  # fmt: skip
    stream.set_epoch(1)
    whole = [y for _, y in stream]
    images = torch.stack([x for x, _ in stream])
    stream.set_epoch(1, start_micro_batch=5)
    tail = list(stream)
    assert [y for _, y in tail] == whole[20:]
    assert torch.equal(torch.stack([x for x, _ in tail]), images[20:])
    # DataLoader workers take micro-batches in turn: the same order with 0, 2 or 4 workers
    for workers in (0, 2, 4):
        stream.set_epoch(1, start_micro_batch=3)
        loader = DataLoader(stream, batch_size=4, num_workers=workers)
        assert torch.cat([y for _, y in loader]).tolist() == whole[12:], workers
    stream.set_epoch(2)
    assert [y for _, y in stream] != whole  # another epoch, another order


def test_streaming_from_a_local_http_server(shards):
    local, local_info = build_dataset(shards, "train", img_size=8)
    with serve(shards) as url:
        remote, info = build_dataset(url, "train", img_size=8)
        index_url, _ = build_dataset(f"{url}/index.json", "test", img_size=8)
        assert len(index_url) == 9
        assert info.class_names == local_info.class_names and len(remote) == len(local)
        assert info.mean == local_info.mean and info.std == local_info.std
        assert _items(remote) == _items(local)
        result = CliRunner().invoke(cli, ["train", "--dataset", url, "--steps", "2", "--batch-size", "8",
                                          "--model", "mixer_t2_8", "--set", "model.img_size=8",
                                          "--set", "run.progress=none", "--set", "run.plot=false",
                                          "--set", "data.num_workers=0",
                                          "--out", str(shards.parent / "http-run")])  # fmt: skip
        assert result.exit_code == 0, result.output


# --- bad input ----------------------------------------------------------------------------------


def _copy(shards, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for path in shards.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def _read_all(folder, split="train", **options):
    dataset, _ = build_dataset(folder, split, img_size=8, **options)
    return [dataset[i][1] for i in range(len(dataset))]


def test_a_missing_shard_is_refused_before_training(shards, tmp_path):
    folder = _copy(shards, tmp_path)
    (folder / "train-000003.tar").unlink()
    with pytest.raises(DataError, match=r"train-000003\.tar.*does not exist"):
        build_dataset(folder, "train", img_size=8)


def test_a_truncated_shard_is_refused_before_training(shards, tmp_path):
    folder = _copy(shards, tmp_path)
    path = folder / "train-000002.tar"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"train-000002\.tar has 3000 bytes but the index records"):
        build_dataset(folder, "train", img_size=8)


def test_a_corrupt_shard_fails_its_checksum(shards, tmp_path):
    folder = _copy(shards, tmp_path)
    path = folder / "train-000001.tar"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-000001\.tar: checksum mismatch"):
        _read_all(folder)


def _rewrite_shard(folder, name, change):
    """Rewrite one shard's members with ``change(name, data) -> (name, data) | None`` and fix
    its index entry, so only the change itself is wrong."""
    path = folder / name
    out = io.BytesIO()
    with tarfile.open(path) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            changed = change(member.name, source.extractfile(member).read())
            if changed is not None:
                info = tarfile.TarInfo(changed[0])
                info.size = len(changed[1])
                target.addfile(info, io.BytesIO(changed[1]))
    path.write_bytes(out.getvalue())
    index = json.loads((folder / "index.json").read_text())
    for entry in index["splits"]["train"]:
        if entry["name"] == name:
            entry.update(
                bytes=len(out.getvalue()), sha256=hashlib.sha256(out.getvalue()).hexdigest()
            )
    (folder / "index.json").write_text(json.dumps(index))


def _first_key(folder, name):
    with tarfile.open(folder / name) as tar:
        return tar.getnames()[0].split(".")[0]


def test_a_sample_without_a_label_names_shard_and_sample(shards, tmp_path):
    folder = _copy(shards, tmp_path)
    key = _first_key(folder, "train-000000.tar")
    _rewrite_shard(folder, "train-000000.tar",
                   lambda n, d: None if n == f"{key}.cls" else (n, d))  # fmt: skip
    with pytest.raises(DataError, match=rf"train-000000\.tar, sample {key}: no label"):
        _read_all(folder)


def test_an_undecodable_image_is_named_or_replaced_with_skip_bad_images(shards, tmp_path, caplog):
    folder = _copy(shards, tmp_path)
    key = _first_key(folder, "train-000004.tar")
    _rewrite_shard(folder, "train-000004.tar",
                   lambda n, d: (n, b"not an image") if n.startswith(key) and not n.endswith(".cls") else (n, d))  # fmt: skip
    with pytest.raises(DataError, match=rf"train-000004\.tar, sample {key}.*--skip-bad-images"):
        _read_all(folder)
    labels = _read_all(folder, skip_bad_images=True)
    assert len(labels) == 36 and f"sample {key}" in caplog.text


def test_a_tar_that_is_not_a_shard_is_named(shards, tmp_path):
    folder = _copy(shards, tmp_path)
    garbage = b"\x00garbage" * 1000  # large enough for its count (1 KiB a sample at least)
    (folder / "train-000005.tar").write_bytes(garbage)
    index = json.loads((folder / "index.json").read_text())
    index["splits"]["train"][5].update(
        bytes=len(garbage), sha256=hashlib.sha256(garbage).hexdigest()
    )
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"train-000005\.tar: (not a readable tar shard|holds 0)"):
        _read_all(folder)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_and_missing_urls(shards):
    with pytest.raises(
        DownloadError, match=r"cannot read shard index http://127\.0\.0\.1:\d+/index\.json"
    ):
        build_dataset(f"http://127.0.0.1:{_closed_port()}", "train")
    with (
        serve(shards) as url,
        pytest.raises(DataError, match=r"shard index .*/nothing/index\.json does not exist"),
    ):
        build_dataset(f"{url}/nothing/", "train")


def test_cli_exit_codes(shards, tmp_path):
    runner = CliRunner()
    folder = _copy(shards, tmp_path)
    (folder / "test-000000.tar").unlink()
    # (a batch that fits the 36 samples: a larger one is refused first, from the index alone)
    result = runner.invoke(
        cli, ["train", "--dataset", str(folder), "--steps", "1", "--batch-size", "8"]
    )
    assert result.exit_code == 2 and "test-000000.tar" in result.output
    again = runner.invoke(cli, ["data", "pack", str(shards.parent / "src"), str(shards)])
    assert again.exit_code == 2 and "already holds shards" in again.output
    missing = runner.invoke(cli, ["data", "pack", str(tmp_path / "nowhere"), str(tmp_path / "o")])
    assert missing.exit_code == 2 and "nowhere" in missing.output
    packed = runner.invoke(cli, ["data", "pack", str(shards.parent / "src"), str(tmp_path / "p"),
                                 "--samples-per-shard", "10"])  # fmt: skip
    assert packed.exit_code == 0 and "train: 36 samples, 4 shards" in packed.output
    with pytest.raises(ConfigError, match="split name"):
        build_dataset("digits", "train", source_split="validation")


def test_a_corrupt_shard_mid_run_loses_nothing(shards, tmp_path):
    """The run stops with exit 2 naming the shard; its checkpoints stay; once the shard is
    restored, --resume ends with the weights of a run that never met the damage."""
    folder = _copy(shards, tmp_path)
    good = (folder / "train-000006.tar").read_bytes()
    damaged = bytearray(good)
    damaged[700] ^= 0xFF
    (folder / "train-000006.tar").write_bytes(bytes(damaged))
    options = ["--model", "mixer_t2_8", "--set", "model.img_size=8", "--epochs", "2",
               "--batch-size", "6", "--set", "data.num_workers=2", "--set", "train.threads=1",
               "--set", "train.checkpoint_every_steps=1", "--set", "run.progress=none",
               "--set", "run.plot=false", "--set", "optim.name=sgd"]  # fmt: skip
    runner = CliRunner()
    run = tmp_path / "run"
    # in a process of its own, as from a shell: its DataLoader workers end with it
    command = [
        sys.executable,
        "-m",
        "mlpmixer",
        "train",
        "--dataset",
        str(folder),
        "--out",
        str(run),
    ]
    failed = subprocess.run([*command, *options], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2, failed.stderr
    assert "train-000006.tar: checksum mismatch" in failed.stderr
    assert (run / "checkpoints" / "last.pt").exists() and not (run / "summary.json").exists()
    (folder / "train-000006.tar").write_bytes(good)
    resumed = runner.invoke(cli, ["train", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    reference = tmp_path / "reference"
    whole = runner.invoke(
        cli, ["train", "--dataset", str(folder), "--out", str(reference), *options]
    )
    assert whole.exit_code == 0, whole.output
    from safetensors.torch import load_file

    got = load_file(run / "model" / "model.safetensors")
    want = load_file(reference / "model" / "model.safetensors")
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize(("world", "micro", "n"), [(1, 7, 50), (2, 4, 9), (2, 16, 300), (4, 3, 5)])
def test_evaluation_parts_cover_every_padded_position_once(world, micro, n):
    padded = -(-n // world) * world  # as padded_eval_length
    parts = _stream_positions(n, world, micro, padded // world)
    assert sorted(p for part in parts for p in part) == list(range(padded))


@pytest.mark.parametrize("shard", ["train-000000.tar", "train-000004.tar"])
def test_replaced_samples_are_counted_in_the_run_summary(shards, tmp_path, shard):
    """--skip-bad-images: a shard sample that cannot be decoded (also in the first shard,
    which the mean/std estimate reads) is replaced, listed once in skipped_images.txt and
    counted in summary.json, as folder runs count the files they skip."""
    folder = _copy(shards, tmp_path)
    key = _first_key(folder, shard)
    _rewrite_shard(folder, shard,
                   lambda n, d: (n, b"not an image") if n.startswith(key) and not n.endswith(".cls") else (n, d))  # fmt: skip
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--dataset", str(folder), "--out", str(run), "--skip-bad-images",
        "--model", "mixer_t2_8", "--set", "model.img_size=8", "--epochs", "2",
        "--batch-size", "6", "--set", "data.num_workers=2", "--set", "train.threads=1",
        "--set", "run.progress=none", "--set", "run.plot=false", "--set", "optim.name=sgd",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["skipped_images"] == 1
    lines = (run / "skipped_images.txt").read_text().splitlines()
    assert len(lines) == 1 and f"{shard}, sample {key}" in lines[0]
    assert "skipped 1 unreadable image(s)" in result.output


def _global_sequence(n, batch, world, grad_accum, start_step):
    """The epoch positions of global batches start_step.. as the ranks of a W-process run
    read them, put together (micro-batch u of rank r is the r-th block of group u)."""
    steps = n // batch
    dataset = type("D", (), {"counts": [n]})()
    options = {"world_size": world, "batch_size": batch, "grad_accum": grad_accum, "steps": steps}
    streams = [GlobalBatchStream(dataset, seed=0, rank=r, **options) for r in range(world)]
    micro = range(start_step * grad_accum, steps * grad_accum)
    return [p for u in micro for stream in streams for p in stream.positions(u)]


@pytest.mark.parametrize("start_step", [0, 5, 17])
def test_global_batches_are_the_same_on_any_number_of_processes(start_step):
    """Resumed at any step on 1, 2, 3, 4 or 6 processes (with or without accumulation):
    the same global sample sequence, each position of the epoch once."""
    batch, n = 24, 1000  # 41 steps of 24; the last 16 positions are dropped
    for accum, worlds in [(1, (2, 3, 4, 6)), (2, (2, 3, 4, 6)), (4, (2, 3, 6))]:
        whole = _global_sequence(n, batch, 1, accum, 0)
        assert sorted(whole) == list(range(41 * batch))
        for world in worlds:
            got = _global_sequence(n, batch, world, accum, start_step)
            assert got == whole[start_step * batch :], (accum, world)
        group = batch // accum  # consecutive groups come from different lanes
        starts = [whole[u * group] for u in range(16)]
        assert all(b - a >= 2 * group for a, b in itertools.pairwise(starts))
