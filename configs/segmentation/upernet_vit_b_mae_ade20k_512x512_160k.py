# ViT-B from the official MAE release (mae_pretrain_vit_base.pth, facebookresearch/mae README). Published:
# 48.1 mIoU (MAE paper, arXiv 2111.06377, Table 5), 48.13 (mmseg configs/mae/README.md). Identical to upernet_vit_b_supervised_* except for the initial weights.
_base_ = './_base_/upernet_vit_b_ade20k_512x512_160k.py'
model = dict(pretrained='checkpoints/mae_pretrain_vit_base.pth')
run_record = dict(init='mae')
