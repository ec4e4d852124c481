_base_ = "mae_pretrain.py"
model = "mae_vit_large_patch16"  # 1024 wide, 24 blocks; decoder 512 wide, 8 blocks
batch_per_device = 64
