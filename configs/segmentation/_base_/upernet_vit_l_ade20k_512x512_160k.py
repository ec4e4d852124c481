# ViT-L sizes (ViT paper, arXiv 2010.11929, Table 1): multi-level features from blocks 7, 11, 15, 23 (mmseg
# configs/beit/beit-large_upernet_8xb1-amp-160k_ade20k-640x640.py). Schedule as ViT-B.
_base_ = './upernet_vit_ade20k_512x512_160k.py'
width = 1024
model = dict(
    backbone=dict(embed_dim=width, depth=24, num_heads=16, out_indices=(7, 11, 15, 23)),
    neck=dict(embed_dim=width),
    decode_head=dict(in_channels=[width] * 4, channels=width),
    auxiliary_head=dict(in_channels=width))
