# ViT-B trained supervised on ImageNet-1K, in timm format (e.g. DeiT-B, deit_base_patch16_224-b5f2ef4d.pth).
# Published: 47.4 mIoU (MAE paper T5). Identical to upernet_vit_b_mae_* except for the initial weights.
_base_ = './_base_/upernet_vit_b_ade20k_512x512_160k.py'
model = dict(pretrained='checkpoints/supervised_in1k_vit_base.pth')
run_record = dict(init='supervised')
