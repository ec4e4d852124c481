# ViT-L trained supervised on ImageNet-1K, in timm format. Published: 49.9 mIoU (MAE paper T5).
# Identical to upernet_vit_l_mae_* except for the initial weights.
_base_ = './_base_/upernet_vit_l_ade20k_512x512_160k.py'
model = dict(pretrained='checkpoints/supervised_in1k_vit_large.pth')
run_record = dict(init='supervised')
