# ViT-B sizes (ViT paper, arXiv 2010.11929, Table 1): multi-level features from blocks 3, 5, 7, 11 (mmseg
# configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py).
_base_ = './upernet_vit_ade20k_512x512_160k.py'
width = 768
model = dict(
    backbone=dict(embed_dim=width, depth=12, num_heads=12, out_indices=(3, 5, 7, 11)),
    neck=dict(embed_dim=width),
    decode_head=dict(in_channels=[width] * 4, channels=width),
    auxiliary_head=dict(in_channels=width))
