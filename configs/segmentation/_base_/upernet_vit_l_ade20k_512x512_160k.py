# ViT-L (backbone.VIT_SIZES: ViT paper, arXiv 2010.11929, Table 1): multi-level features from blocks 7, 11, 15, 23
# (mmseg configs/beit/beit-large_upernet_8xb1-amp-160k_ade20k-640x640.py). Schedule as ViT-B.
_base_ = './upernet_vit_ade20k_512x512_160k.py'
from segmentation.plain_vit import upernet_sizes  # noqa: E402 (after _base_, for mmengine)

model = upernet_sizes('vit_large', out_indices=(7, 11, 15, 23))
