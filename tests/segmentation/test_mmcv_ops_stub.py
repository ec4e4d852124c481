"""The mmcv.ops stand-in: mmseg imports inside it, point_sample is the real op, compiled ops fail clearly, it
leaves sys.modules and mmcv as they were, and it stays out of the way when mmcv has its compiled ops."""
import importlib.machinery
import sys
import types
import warnings

import mmcv
import pytest
import torch

from segmentation import mmcv_ops_stub
from segmentation.frameworks import mmseg_build_notices_off


@pytest.fixture
def stand_in():
    with mmcv_ops_stub.installed() as active:
        yield active


def test_active_with_mmcv_lite_and_mmseg_models_import():
    assert not mmcv_ops_stub.has_compiled_ops()  # this environment has mmcv-lite
    assert "mmcv.ops" not in sys.modules and not hasattr(mmcv, "ops")  # importing segmentation installed nothing
    with mmcv_ops_stub.installed() as active, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert active and mmcv_ops_stub.is_installed()
        import mmseg.models  # noqa: F401  (fails on mmcv.ops without the stand-in)
        from mmseg.models.utils.point_sample import point_sample

        assert point_sample.__module__ == "mmcv.ops.point_sample"  # mmcv's own pure-torch function
    # mmcv.cnn imports MultiScaleDeformableAttention from mmcv.ops and warns when it cannot: the stand-in has it
    assert not [w for w in caught if "MultiScaleDeformableAttention" in str(w.message)
                and issubclass(w.category, UserWarning)]
    assert not mmcv_ops_stub.is_installed()
    assert not [name for name in sys.modules if name.startswith("mmcv.ops")] and not hasattr(mmcv, "ops")


def test_leaving_restores_what_was_there_even_on_an_error():
    other = types.ModuleType("mmcv.ops")  # e.g. full mmcv's, or a test's
    sys.modules["mmcv.ops"] = mmcv.ops = other
    try:
        with pytest.raises(RuntimeError, match="inside"), mmcv_ops_stub.installed(compiled_ops=False) as active:
            assert active and mmcv_ops_stub.is_installed() and sys.modules["mmcv.ops"] is not other
            raise RuntimeError("inside")
        assert sys.modules["mmcv.ops"] is other and mmcv.ops is other
        assert "mmcv.ops.point_sample" not in sys.modules
    finally:
        del sys.modules["mmcv.ops"], mmcv.ops


def test_nested_blocks_keep_the_outer_stand_in(stand_in):
    outer = sys.modules["mmcv.ops"]
    with mmcv_ops_stub.installed():
        assert sys.modules["mmcv.ops"] is outer
    assert sys.modules["mmcv.ops"] is outer and mmcv.ops is outer


def test_point_sample_is_bilinear_on_normalised_coordinates(stand_in):
    from mmcv.ops import point_sample

    feature = torch.arange(16.0).reshape(1, 1, 4, 4)  # value = 4 * row + col
    # (x, y) in [0, 1]; pixel (r, c) has its centre at ((c + 0.5) / 4, (r + 0.5) / 4) (align_corners=False)
    centres = torch.tensor([[[0.125, 0.125], [0.375, 0.625], [0.875, 0.875]]])
    torch.testing.assert_close(point_sample(feature, centres), torch.tensor([[[0.0, 9.0, 15.0]]]))
    between = torch.tensor([[[0.25, 0.125], [0.25, 0.25]]])  # halfway between columns 0 and 1 / and rows 0, 1
    torch.testing.assert_close(point_sample(feature, between), torch.tensor([[[0.5, 2.5]]]))
    grid = torch.rand(2, 3, 5, 2)  # (N, Hg, Wg, 2) keeps its grid shape
    assert point_sample(torch.randn(2, 7, 4, 4), grid).shape == (2, 7, 3, 5)


def test_compiled_ops_raise_a_clear_error(stand_in):
    from mmcv.ops import CrissCrossAttention, sigmoid_focal_loss

    with pytest.raises(mmcv_ops_stub.CompiledOpMissing, match=r"mmcv\.ops\.sigmoid_focal_loss .*full mmcv"):
        sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ModuleNotFoundError, match=r"mmcv\.ops\.CrissCrossAttention .*mmcv-lite"):
        CrissCrossAttention(8)
    with pytest.raises(ModuleNotFoundError, match=r"mmcv\.ops\.RoIAlign .*full mmcv"):
        from mmcv.ops import RoIAlign  # noqa: F401  (any other op)
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention

    with pytest.raises(ModuleNotFoundError, match=r"mmcv\.ops\.MultiScaleDeformableAttention .*mmcv-lite"):
        MultiScaleDeformableAttention()
    # mmseg's own fallback for a missing op still works: CCHead reports the stand-in's message
    from mmseg.models.decode_heads import CCHead

    with pytest.raises(ModuleNotFoundError, match="CrissCrossAttention"), mmseg_build_notices_off():
        CCHead(in_channels=8, channels=4, num_classes=3)


def test_inactive_when_mmcv_has_compiled_ops(monkeypatch):
    fake_ext = types.ModuleType("mmcv._ext")
    fake_ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", loader=None)
    monkeypatch.setitem(sys.modules, "mmcv._ext", fake_ext)  # what full mmcv has
    monkeypatch.delitem(sys.modules, "mmcv.ops", raising=False)
    monkeypatch.delattr(mmcv, "ops", raising=False)

    assert mmcv_ops_stub.has_compiled_ops()
    assert mmcv_ops_stub.install() is False
    with mmcv_ops_stub.installed() as active:
        assert active is False
        full_ops = sys.modules["mmcv.ops"] = types.ModuleType("mmcv.ops")  # what importing full mmcv.ops does
    assert sys.modules.pop("mmcv.ops") is full_ops  # left in place: it is not the stand-in's to remove
    assert not hasattr(mmcv, "ops")
    assert not mmcv_ops_stub.is_installed()


def test_install_is_idempotent(stand_in):
    ops = sys.modules["mmcv.ops"]
    assert mmcv_ops_stub.install() is True
    assert sys.modules["mmcv.ops"] is ops and mmcv.ops is ops
