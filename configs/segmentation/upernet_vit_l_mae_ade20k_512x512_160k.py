# ViT-L from the official MAE release (mae_pretrain_vit_large.pth, facebookresearch/mae README). Published:
# 53.6 mIoU (MAE paper, arXiv 2111.06377, Table 5). Identical to upernet_vit_l_supervised_* except for the initial weights.
_base_ = './_base_/upernet_vit_l_ade20k_512x512_160k.py'
model = dict(pretrained='checkpoints/mae_pretrain_vit_large.pth')
run_record = dict(init='mae')
