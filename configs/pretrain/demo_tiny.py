# The paper's recipe scaled down to minutes on 2 CPU cores: the demo's shared encoder (ViT-Tiny width, 4 blocks,
# patch 16 on 128 px images: 64 patches, 16 visible), a 128-wide 2-block decoder. Numbers not in Table 8 are choices for
# this scale: the batch, the schedule, and a base lr 10x the paper's for the small batch.
_base_ = "mae_pretrain.py"
model = "mae_vit_tiny_patch16"
input_size = 128
patch_size = 16
depth = 4
decoder_embed_dim = 128
decoder_depth = 2
decoder_num_heads = 4
batch_size = 64
blr = 1.5e-3
epochs = 40
warmup_epochs = 4
num_workers = 2
checkpoint_every = 100
