# The demo zoo's supervised twin on one GPU (the DeiT analogue): the same model trained from random init on the same
# images with their labels. The paper trains its supervised ViTs 300 epochs against MAE's 1600 (Appendix A.2), so
# the twin sees 300/1600 of the MAE encoder's images: 30 epochs of 65,536, 2.0 x 10^6 images.
_base_ = "demo_tiny_finetune.py"
batch_size = 1024
blr = 1e-3
epochs = 30
warmup_epochs = 3
compile = True
num_workers = 8
checkpoint_every = 200
log_every = 10
