"""Bad image files in `load_image`, `predict` and image-folder data sets: clear errors only.

Every broken file (empty, truncated, not an image, zero-size, a decompression bomb) is a
`DataError` naming the file; every odd-but-valid mode (CMYK, palette, palette with a
transparent colour, 16-bit, alpha) decodes to the values an independent computation gives.
Random bytes never raise anything else (hypothesis).
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.data import build_dataset, load_image
from mlpmixer.errors import DataError

TINY = {"hidden_dim": 8, "num_blocks": 1, "tokens_mlp_dim": 4, "channels_mlp_dim": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _zero_size_png() -> bytes:
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)  # 0 x 0 RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b""))
        + _chunk(b"IEND", b"")
    )


def _broken_files() -> dict[str, bytes]:
    png = _png_bytes(Image.new("RGB", (40, 40), (200, 10, 10)))
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 90, 0)).save(jpeg, "JPEG")
    return {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 2],
        "text.jpg": b"this is a text file with an image extension\n",
        "zero.png": _zero_size_png(),
    }


@pytest.mark.parametrize("name", sorted(_broken_files()))
def test_broken_files_are_data_errors_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(_broken_files()[name])
    with pytest.raises(DataError, match=r"cannot read image .*" + name):
        load_image(path)


def test_a_zero_size_image_a_plugin_opens_is_refused(tmp_path, monkeypatch):
    # PIL's own plugins refuse 0-pixel headers at open; a plugin that does not must not
    # reach the resize (which would divide by zero)
    monkeypatch.setattr(Image, "open", lambda path: Image.new("L", (0, 5)))
    with pytest.raises(DataError, match=r"z\.png: it has zero width or height"):
        load_image(tmp_path / "z.png")


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"cannot read image .*nothing\.png: no such file"):
        load_image(tmp_path / "nothing.png")


@pytest.mark.parametrize("pixels", [1600, 3000])  # PIL warns in (limit, 2 limit], raises above
def test_decompression_bombs_are_errors_not_warnings(tmp_path, monkeypatch, pixels):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(Image.new("L", (pixels // 40, 40))))
    with pytest.raises(
        DataError, match=r"bomb\.png.*decompression-bomb limit of 1000.*MAX_IMAGE"
    ) as err:
        load_image(path)
    assert "2000" not in str(err.value)  # issue 16 item 19: one limit, not PIL's two
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # under the limit: decoded
    assert load_image(path).shape == (3, 40, pixels // 40)


def test_odd_modes_decode_to_the_right_values(tmp_path):
    # CMYK pure cyan is RGB (0, 255, 255); white is (0, 0, 0, 0)
    cmyk = Image.new("CMYK", (2, 2), (255, 0, 0, 0))
    cmyk.putpixel((1, 1), (0, 0, 0, 0))
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)  # JPEG is the usual CMYK carrier
    got = load_image(tmp_path / "cmyk.jpg")
    assert got[:, 0, 0].tolist() == pytest.approx([0.0, 1.0, 1.0], abs=0.03)
    # palette: each index becomes its palette colour
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 250, 128, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png")
    got = load_image(tmp_path / "palette.png")
    assert torch.allclose(got[:, 0, 0], torch.tensor([10, 20, 30]) / 255.0)
    assert torch.allclose(got[:, 0, 1], torch.tensor([250, 128, 0]) / 255.0)
    # palette with a transparent index: composited over white
    palette.info["transparency"] = 1
    palette.save(tmp_path / "palette_t.png", transparency=1)
    got = load_image(tmp_path / "palette_t.png")
    assert got[:, 0, 1].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # 16-bit grey keeps its 16 bits (8-bit conversion would give 128/255 = 0.50196)
    Image.fromarray(np.array([[32768, 65535]], dtype=np.uint16)).save(tmp_path / "g16.png")
    got = load_image(tmp_path / "g16.png", in_chans=1)
    assert got.flatten().tolist() == pytest.approx([32768 / 65535, 1.0], abs=1e-6)
    # RGBA: alpha 0 shows the white background, alpha 128 mixes, alpha 255 the colour
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 128], [0, 255, 0, 255]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = load_image(tmp_path / "rgba.png")
    a = 128 / 255
    assert got[:, 0, 0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert got[:, 0, 1].tolist() == pytest.approx([1 - a, 1 - a, 1.0], abs=1e-6)
    assert got[:, 0, 2].tolist() == pytest.approx([0.0, 1.0, 0.0])
    # grey + alpha to one channel
    Image.fromarray(np.array([[[0, 0], [100, 255]]], np.uint8), "LA").save(tmp_path / "la.png")
    got = load_image(tmp_path / "la.png", in_chans=1)
    assert got.flatten().tolist() == pytest.approx([1.0, 100 / 255], abs=1e-6)


_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"P5\n", b"RIFF"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magic=st.sampled_from(_MAGIC), body=st.binary(max_size=300), in_chans=st.sampled_from([1, 3])
)
def test_random_bytes_as_images_give_a_tensor_or_a_data_error(
    tmp_path_factory, magic, body, in_chans
):
    path = tmp_path_factory.mktemp("fuzz") / "x.png"
    path.write_bytes(magic + body)
    try:
        image = load_image(path, in_chans)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert image.dtype == torch.float32 and image.shape[0] == in_chans
    assert image.numel() > 0 and image.min() >= 0.0 and image.max() <= 1.0


# --- predict ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    create_model("mixer_t2_8", class_names=[f"c{i}" for i in range(10)], **TINY).save(path)
    return path


def test_predict_reports_every_bad_file_and_predicts_the_rest(tmp_path, checkpoint):
    images = tmp_path / "images"
    images.mkdir()
    for name, data in _broken_files().items():
        (images / name).write_bytes(data)
    Image.new("L", (16, 16), 40).save(images / "good.png")
    Image.new("CMYK", (9, 7), (0, 50, 0, 10)).save(images / "cmyk.jpg")
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(checkpoint), "--out-dir", str(out), "--json"]
    result = CliRunner().invoke(cli, [*args, str(images), str(tmp_path / "missing.png")])
    assert result.exit_code == 1  # documented: some files failed
    data = json.loads((out / "predictions.json").read_text())
    assert sorted(p["path"].rsplit("/", 1)[1] for p in data["predictions"]) == [
        "cmyk.jpg",
        "good.png",
    ]
    failed = {f["path"].rsplit("/", 1)[1]: f["error"] for f in data["failures"]}
    assert sorted(failed) == sorted([*_broken_files(), "missing.png"])
    assert "no such file" in failed["missing.png"]
    assert "cannot identify image file" in failed["zero.png"]
    assert "Traceback" not in result.output
    for name in failed:  # one line on stderr per failure, naming the file
        lines = [line for line in result.stderr.splitlines() if name in line]
        assert len(lines) == 1 and lines[0].startswith("error:")


def test_predict_all_good_exits_0(tmp_path, checkpoint):
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(tmp_path / "a.png")
    args = ["predict", "--checkpoint", str(checkpoint), "--out-dir", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output


def test_predict_with_a_corrupt_checkpoint_exits_2_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 50)
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    args = [
        "predict",
        "--checkpoint",
        str(bad),
        "--out-dir",
        str(tmp_path / "o"),
        str(tmp_path / "a.png"),
    ]
    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 2
    assert "Traceback" not in plain.output and 1 <= len(plain.output.strip().splitlines()) <= 2
    assert str(bad) in plain.output.replace("\n", "")
    debug = CliRunner().invoke(cli, ["--debug", *args])
    assert debug.exit_code == 2 and "Traceback" in debug.output


# --- image-folder data sets ------------------------------------------------------------------


def _folder(root, classes: dict[str, int]):
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (8, 8), 20 * i).save(root / name / f"{i}.png")
    return root


def test_data_directory_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match=r"unknown data set .*nowhere.*no such directory"):
        build_dataset(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(_png_bytes(Image.new("L", (4, 4))))
    with pytest.raises(DataError, match=r"flat: not a data set directory.*class folders"):
        build_dataset(tmp_path / "flat")
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"photo\.jpg is a file; --dataset takes a name"):
        build_dataset(tmp_path / "photo.jpg")
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    (tmp_path / "noimg" / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"noimg: no images with extensions \.jpg"):
        build_dataset(tmp_path / "noimg")


def test_an_empty_class_folder_is_named(tmp_path):
    _folder(tmp_path / "d", {"cat": 4, "dog": 0, "emu": 3})
    with pytest.raises(DataError, match=r"class folder\(s\) without images: dog;"):
        build_dataset(tmp_path / "d", img_size=8)


def test_labels_out_of_range_are_refused(tmp_path):
    def write_idx(path, array: np.ndarray) -> None:  # big-endian idx: magic, dims, data
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        path.write_bytes(header + array.tobytes())

    root = tmp_path / "mnist"
    root.mkdir()
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.array([0, 1, 2, 11], np.uint8))
    with pytest.raises(DataError, match=r"label 11 is out of range.*10 classes.*0\.\.9"):
        build_dataset(root)


def test_corrupt_file_in_a_folder_data_set_raises_with_its_path(tmp_path):
    root = _folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "b" / "0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read image .*b/0\.png"):
        build_dataset(root, "train", img_size=8)  # the mean/std sample decodes every file


# --- skipping bad files (opt-in) -------------------------------------------------------------


def _split_folder(root, per_class: int):
    _folder(root / "train", {"a": per_class, "b": per_class})
    _folder(root / "val", {"a": 1, "b": 1})
    return root


def test_skip_bad_images_lists_every_file_left_out(tmp_path, monkeypatch, capfd, caplog):
    root = _split_folder(tmp_path / "d", 4)
    broken = _broken_files()
    (root / "train" / "a" / "empty.png").write_bytes(broken["empty.png"])
    (root / "train" / "a" / "text.jpg").write_bytes(broken["text.jpg"])
    (root / "train" / "b" / "truncated.png").write_bytes(broken["truncated.png"])
    Image.new("L", (50, 50)).save(
        root / "train" / "b" / "bomb.png"
    )  # 2500 px > the limit set below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"cannot read image .*(empty|text|truncated|bomb)"):
        build_dataset(root, "train", img_size=8)  # the default: stop, naming the file
    dataset, info = build_dataset(root, "train", img_size=8, skip_bad_images=True)
    assert sorted(p.name for p in dataset.files) == sorted([f"{i}.png" for i in range(4)] * 2)
    assert len(dataset) == info.num_examples == 8
    skipped = {line.split(": ", 1)[0].rsplit("/", 1)[1]: line for line in info.skipped}
    assert sorted(skipped) == ["bomb.png", "empty.png", "text.jpg", "truncated.png"]
    assert "decompression-bomb limit of 1000" in skipped["bomb.png"]
    assert "cannot identify image file" in skipped["empty.png"]
    for i in range(len(dataset)):
        assert dataset[i][0].shape == (3, 8, 8)
    assert "warning" not in capfd.readouterr().err  # nothing left to skip at load time
    assert "skipping" not in caplog.text


def test_a_file_that_fails_only_when_decoded_is_replaced_by_the_next(tmp_path, caplog):
    jpeg = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(jpeg, "JPEG", quality=90)
    root = _split_folder(tmp_path / "d", 2)
    cut = root / "train" / "a" / "cut.jpg"
    cut.write_bytes(jpeg.getvalue()[:2000])  # the header is complete: verify() passes
    dataset, _ = build_dataset(root, "train", img_size=8, skip_bad_images=True)
    index = [p.name for p in dataset.files].index("cut.jpg")
    caplog.clear()
    image, label = dataset[index]
    expected = load_image(dataset.files[index + 1])
    assert label == dataset.labels[index + 1]
    assert torch.allclose(image, torch.nn.functional.interpolate(expected[None], (8, 8))[0], atol=1)
    # logged as a warning (the library does not print; the CLI shows it as "warning: ...")
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert f"skipping unreadable image: cannot read image {cut}" in warned[-1].getMessage()
    with pytest.raises(DataError, match=r"cannot read image .*cut\.jpg.*skip.bad.images"):
        build_dataset(root, "train", img_size=8)  # without the option: stops, naming it


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magic=st.sampled_from([b"", b"\x00\x00\x08\x03", b"\x00\x00\x08\x01", b"\x00\x00\x0d\x04"]),
    body=st.binary(max_size=64),
)
def test_random_bytes_as_idx_files_give_an_array_or_a_data_error(tmp_path_factory, magic, body):
    from mlpmixer.data.idx import read_idx

    path = tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte"
    path.write_bytes(magic + body)
    try:
        array = read_idx(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert array.ndim == magic[3]


def test_an_idx_header_with_an_absurd_shape_is_refused(tmp_path):
    from mlpmixer.data.idx import read_idx

    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1))
    with pytest.raises(DataError, match=r"idx header says shape \(4294967295, 4294967295"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match=r"truncated idx file \(6 bytes, header needs 16\)"):
        read_idx(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_predict_on_random_bytes_reports_failures_and_never_raises(
    tmp_path_factory, checkpoint, files
):
    from mlpmixer import load_model
    from mlpmixer.evaluate import predict_files

    folder = tmp_path_factory.mktemp("rand")
    for i, data in enumerate(files):
        (folder / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + data if i % 2 else data)
    report = predict_files(load_model(checkpoint), [folder], top_k=3)
    assert len(report.predictions) + len(report.failures) == len(files)
    for failure in report.failures:
        assert failure["error"].startswith(f"cannot read image {failure['path']}")
