"""Shared fixtures: one small generated data world per test session (every test uses project-made data)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """Paths of a small generation (see mae_transfer.synthetic.generate): 64 px images, a few of each kind."""
    from mae_transfer.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(seed=0, image_size=64, num_pretrain=32, num_classify_train=6, num_classify_val=2,
                         classify_image_size=32, num_coco_train=8, num_coco_val=4, num_ade_train=8,
                         num_ade_val=4, max_objects=3)
    return generate(tmp_path_factory.mktemp("synthetic") / "data", spec)
