# The demo zoo's MAE encoder on one GPU: the demo_tiny model (ViT-Tiny width, 4 blocks, patch 16, 128 px) with the
# paper's recipe (Table 8: batch 4096, blr 1.5e-4, 5 % of the epochs warm-up), run long enough for MAE to pay at small
# scale: 160 epochs of the zoo's 65,536 generated images are 1.05 x 10^7 images seen.
_base_ = "demo_tiny.py"
batch_size = 4096
blr = 1.5e-4
epochs = 160
warmup_epochs = 8
compile = True
num_workers = 8
checkpoint_every = 200
log_every = 10
