# ViT-B (backbone.VIT_SIZES: ViT paper, arXiv 2010.11929, Table 1): multi-level features from blocks 3, 5, 7, 11
# (mmseg configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py).
_base_ = './upernet_vit_ade20k_512x512_160k.py'
from segmentation.plain_vit import upernet_sizes  # noqa: E402 (after _base_, for mmengine)

model = upernet_sizes('vit_base', out_indices=(3, 5, 7, 11))
