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
