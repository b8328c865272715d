"""The int8 sensitivity table names what each layer does, for every family, from the family's
spec (`FamilySpec.layer_kinds`): token-mixing, channel-mixing, reweight, stem, downsample,
head. Before, `sensitivity.kind_of` guessed from the Mixer's names ("token", "spatial",
"blocks.") and called every zoo layer "other" (#29).

Each family's tiny model: every nn.Linear and nn.Conv2d (what the quantizers take) has a kind
other than "other", and the layers whose role the paper fixes have the expected one.
"""

from __future__ import annotations

import pytest
from torch import nn

from mlpmixer.deploy.sensitivity import kind_of
from mlpmixer.models import create_model, family_names
from mlpmixer.models.spec import LAYER_KINDS, family_spec

MIXER = {"img_size": 8, "patch_size": 4, "num_blocks": 2, "hidden_dim": 8}
TINY = {
    "mixer": ("mixer_t2_8", {**MIXER, "family": "mixer"}),
    "gmixer": ("mixer_t2_8", {**MIXER, "family": "gmixer"}),
    "resmlp": ("mixer_t2_8", {**MIXER, "family": "resmlp"}),
    "gmlp": ("mixer_t2_8", {**MIXER, "family": "gmlp"}),
    "vip": ("vip_s7", {"img_size": 16, "patch_size": 4, "depths": [1, 1], "embed_dims": [8, 8],
                       "transitions": [True], "segment_dims": [4, 2], "mlp_ratios": [2, 2]}),
    "cyclemlp": ("cyclemlp_b1", {"img_size": 32, "depths": [1, 1, 1, 1],
                                 "embed_dims": [8, 8, 16, 16]}),
    "asmlp": ("asmlp_tiny", {"img_size": 32, "depths": [1, 1, 1, 1], "embed_dim": 8}),
    "wavemlp": ("wavemlp_t", {"img_size": 32, "depths": [1, 1, 1, 1],
                              "embed_dims": [8, 8, 16, 16]}),
    "hiremlp": ("hiremlp_tiny", {"img_size": 32, "depths": [1, 1, 1, 1],
                                 "embed_dims": [8, 8, 16, 16]}),
}  # fmt: skip

# layers whose role the papers fix: name -> kind
EXPECTED = {
    "mixer": {"stem.proj": "stem", "blocks.1.token_mixing.fc2": "token-mixing",
              "blocks.0.channel_mixing.fc1": "channel-mixing", "head": "head"},
    "gmixer": {"blocks.0.token_mixing.fc1": "token-mixing",
               "blocks.1.channel_mixing.fc2": "channel-mixing"},
    "resmlp": {"blocks.0.token_mixing": "token-mixing",
               "blocks.0.channel_mixing.fc1": "channel-mixing"},
    "gmlp": {"blocks.0.spatial_gating.proj": "token-mixing", "blocks.0.fc1": "channel-mixing",
             "blocks.1.fc2": "channel-mixing"},
    "vip": {"patch_embed.proj": "stem", "network.0.0.attn.mlp_h": "token-mixing",
            "network.0.0.attn.mlp_w": "token-mixing", "network.0.0.attn.mlp_c": "channel-mixing",
            "network.0.0.attn.reweight.fc1": "reweight", "network.0.0.attn.proj": "channel-mixing",
            "network.1.proj": "downsample", "network.2.0.mlp.fc2": "channel-mixing"},
    "cyclemlp": {"network.0.0.attn.sfc_h": "token-mixing", "network.0.0.attn.mlp_c":
                 "channel-mixing", "network.1.proj": "downsample", "head": "head"},
    "asmlp": {"layers.0.blocks.0.axial_shift.conv2_1": "token-mixing",
              "layers.0.blocks.0.axial_shift.conv1": "channel-mixing",
              "layers.0.blocks.0.axial_shift.conv3": "channel-mixing",
              "layers.0.downsample.reduction": "downsample", "patch_embed.proj": "stem"},
    "wavemlp": {"network.0.0.attn.tfc_h": "token-mixing", "network.0.0.attn.fc_c":
                "channel-mixing", "network.0.0.attn.theta_h_conv.0": "channel-mixing",
                "network.3.proj": "downsample"},
    "hiremlp": {"network.0.0.attn.mlp_h1": "token-mixing", "network.0.0.attn.mlp_w2":
                "token-mixing", "network.0.0.attn.mlp_c": "channel-mixing",
                "network.5.proj": "downsample"},
}  # fmt: skip


def tiny(family: str) -> nn.Module:
    name, overrides = TINY[family]
    return create_model(name, num_classes=3, **overrides)


def test_every_family_is_covered():
    assert set(TINY) == set(family_names())


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_quantizable_layer_has_a_kind(family: str):
    model = tiny(family)
    assert model.config.family == family
    modules = dict(model.named_modules())
    weighted = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
    kinds = {name: kind_of(name, family) for name in weighted}
    assert "other" not in kinds.values(), {n: k for n, k in kinds.items() if k == "other"}
    assert set(kinds.values()) <= set(LAYER_KINDS)
    for name, kind in EXPECTED[family].items():
        assert name in modules, name  # the expectation names a real module
        assert kind_of(name, family) == kind, name
    assert kind_of(family_spec(family).classifier, family) == "head"
    assert {"stem", "head", "channel-mixing"} <= set(kinds.values())


def test_an_unknown_name_is_other():
    assert kind_of("nothing.like.this", "vip") == "other"
