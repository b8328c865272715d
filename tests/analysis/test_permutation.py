"""Order invariance: permutations against a loop reference, folding, and the exact training check."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import randomised
from mlpmixer import ConfigError, create_model, model_config
from mlpmixer.analysis.baseline_cnn import SmallCnn
from mlpmixer.analysis.order_study import exact_check, order_invariance_study
from mlpmixer.analysis.permutation import Permutations, fold_permutation


def loop_permutation(images, patch_size, patches, pixels):
    """Reference: copy pixel by pixel. Patch t (row-major) <- old patch patches[t]; inside,
    position q (row-major) <- old position pixels[q]."""
    out = torch.empty_like(images)
    ph, pw = patch_size
    gw = images.shape[-1] // pw
    for t, source in enumerate(patches.tolist()):
        for q, old in enumerate(pixels.tolist()):
            dst_r, dst_c = (t // gw) * ph + q // pw, (t % gw) * pw + q % pw
            src_r, src_c = (source // gw) * ph + old // pw, (source % gw) * pw + old % pw
            out[..., dst_r, dst_c] = images[..., src_r, src_c]
    return out


SHAPE = {"img_size": (6, 8), "patch_size": (3, 2), "in_chans": 2, "num_blocks": 2}


def test_patch_and_pixel_permutation_matches_a_pixel_loop():
    perms = Permutations.random((6, 8), (3, 2), seed=3)
    images = torch.randn(2, 2, 6, 8)
    expected = loop_permutation(images, (3, 2), perms.patches, perms.pixels)
    torch.testing.assert_close(perms.apply(images, "patch+pixel"), expected, rtol=0, atol=0)
    shuffled = perms.apply(images, "global")
    assert torch.equal(shuffled.flatten(2), images.flatten(2)[..., perms.global_pixels])
    assert torch.equal(perms.apply(images, "original"), images)
    with pytest.raises(ValueError, match="variant"):
        perms.apply(images, "rows")


def test_folded_mixer_on_permuted_images_equals_mixer_on_originals():
    model = randomised(create_model("mixer_t2_8", **SHAPE)).double()
    perms = Permutations.random((6, 8), (3, 2), seed=1)
    folded = fold_permutation(model, perms)
    images = torch.randn(5, 2, 6, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(
            folded(perms.apply(images, "patch+pixel")), expected, rtol=0, atol=1e-12
        )
        # the test can fail: without folding, or with a global permutation, outputs change
        assert (model(perms.apply(images, "patch+pixel")) - expected).abs().max() > 1e-3
        assert (folded(perms.apply(images, "global")) - expected).abs().max() > 1e-3
        cnn = SmallCnn(2, 10, width=4).double().eval()
        assert (cnn(perms.apply(images, "patch+pixel")) - cnn(images)).abs().max() > 1e-6


def _digits(n_train=240, n_test=120):
    from mlpmixer.data import build_dataset

    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        data, _ = build_dataset("digits", split)
        items = [data[i] for i in range(n)]
        images = torch.stack([x for x, _ in items])
        out.append(((images - 0.3) / 0.4, torch.tensor([y for _, y in items])))
    return out


TINY = {"hidden_dim": 24, "num_blocks": 2, "tokens_mlp_dim": 8, "channels_mlp_dim": 48}


@pytest.mark.slow
def test_training_on_permuted_data_from_the_folded_init_is_the_same_network():
    (train, test) = _digits()
    config = model_config("mixer_t2_8", **TINY)
    perms = Permutations.random(config.img_size, config.patch_size, seed=0)
    check = exact_check(config, perms, train, test[0], epochs=2, seed=0, batch_size=32)
    assert check.max_abs_weight_diff < 1e-10 and check.max_abs_logit_diff < 1e-10
    assert check.same_predictions and check.dtype == "float64"


def test_study_reports_three_accuracies_per_model():
    (train, test) = _digits(160, 80)
    config = model_config("mixer_t2_8", **TINY)
    result = order_invariance_study(
        train, test, config, epochs=2, cnn_width=4, exact_epochs=1, batch_size=32
    )
    for name in ("mixer", "cnn"):
        assert set(result.accuracy[name]) == {"original", "patch+pixel", "global"}
        assert all(0.0 <= a <= 1.0 for a in result.accuracy[name].values())
    assert result.exact.max_abs_logit_diff < 1e-10 and result.num_test == 80
    with pytest.raises(ConfigError, match="do not fit"):
        order_invariance_study(train, test, model_config("mixer_t4_28"), epochs=1)
