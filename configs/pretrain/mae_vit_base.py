_base_ = "mae_pretrain.py"
model = "mae_vit_base_patch16"   # 768 wide, 12 blocks; decoder 512 wide, 8 blocks
batch_per_device = 64            # the official run's per-GPU batch; accumulation makes up the rest
