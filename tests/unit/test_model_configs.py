"""Checkpoints written before a model option existed rebuild the model they trained."""
import torch

from export.models.base import create, from_config


def test_an_efficientad_checkpoint_without_the_autoencoder_still_loads():
    old = create("efficientad", size=64, autoencoder=False)
    config = {k: v for k, v in old.config().items() if k != "autoencoder"}  # as old checkpoints stored it
    state = old.state_dict()
    state["q_a"], state["q_b"] = torch.tensor(0.5), torch.tensor(2.0)  # then scalars, one map
    rebuilt = from_config("efficientad", config)
    rebuilt.load_state_dict(state)
    assert rebuilt.autoencoder is None and rebuilt.q_a.shape == (1, 1, 1) and float(rebuilt.q_b) == 2.0
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        assert rebuilt.patch_maps(x).shape == (2, 1, 8, 8)
    assert create("efficientad", size=64).patch_maps(x).shape == (2, 2, 8, 8)  # new: both maps


def test_patchcore_keeps_one_neighbour_for_old_checkpoints_and_three_for_new():
    config = {k: v for k, v in create("patchcore", size=64, bank_size=16).config().items() if k != "neighbours"}
    assert from_config("patchcore", config).neighbours == 1
    assert create("patchcore", size=64, bank_size=16).neighbours == 3
    assert create("knn", size=64, bank_size=16).neighbours == 1  # the floor stays the simple one


def test_an_rd_checkpoint_from_before_stages_rebuilds_the_same_model():
    """Old checkpoints stored no ``stages`` and named the blocks from4/from8/up16/up8/up4."""
    torch.manual_seed(0)
    legacy = create("rd", size=64, width=256, stages=(1, 2, 3))
    for p in legacy.parameters():
        p.data.normal_(0, 0.1)
    renames = [("bottleneck.down.0.", "bottleneck.from4."), ("bottleneck.down.1.0.", "bottleneck.from8."),
               ("ups.0.", "up16."), ("ups.1.", "up8."), ("ups.2.", "up4.")]
    old_state = {}
    for key, value in legacy.state_dict().items():
        for new, old in renames:
            if key.startswith(new):
                key = old + key[len(new):]
        old_state[key] = value
    assert "bottleneck.from8.0.weight" in old_state and not any(k.startswith("ups.") for k in old_state)
    config = {k: v for k, v in legacy.config().items() if k != "stages"}
    rebuilt = from_config("rd", config)
    rebuilt.load_state_dict(old_state)
    assert rebuilt.stages == (1, 2, 3)
    x = torch.rand(2, 3, 64, 64) * 255
    legacy.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(legacy.patch_map(x), rebuilt.patch_map(x))
    assert create("rd", size=64).stages == (2, 3, 4)  # new models: the deeper stages
