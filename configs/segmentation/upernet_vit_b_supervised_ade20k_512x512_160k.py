# ViT-B trained supervised on ImageNet-1K. The MAE paper's own (its Appendix A.2) is not public: DeiT-B
# (Touvron et al., arXiv 2012.12877, ImageNet-1K only, 81.8 top-1) stands in, fetched by timm's name (backbone.hub);
# model.pretrained=/path/file.pth takes any other. Published: 47.4 mIoU (MAE paper T5).
# Identical to upernet_vit_b_mae_* except for the initial weights.
_base_ = './_base_/upernet_vit_b_ade20k_512x512_160k.py'
model = dict(pretrained='timm:deit_base_patch16_224.fb_in1k')
run_record = dict(init='supervised')
