# ViT-L trained supervised on ImageNet-1K. The MAE paper's own (82.5 top-1, its Appendix A.2) is not public; timm's
# only ImageNet-1K-only supervised ViT-L/16 is DeiT III-L (Touvron et al., arXiv 2204.07118, 84.9 top-1, a stronger
# recipe), whose LayerScale is folded into the projections on loading (backbone.layouts), exactly.
# Published: 49.9 mIoU (MAE paper T5). Identical to upernet_vit_l_mae_* except for the initial weights.
_base_ = './_base_/upernet_vit_l_ade20k_512x512_160k.py'
model = dict(pretrained='timm:deit3_large_patch16_224.fb_in1k')
run_record = dict(init='supervised')
