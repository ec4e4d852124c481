_base_ = "mae_pretrain.py"
model = "mae_vit_huge_patch14"   # 1280 wide, 32 blocks, patch 14; decoder 512 wide, 8 blocks
batch_per_device = 64
