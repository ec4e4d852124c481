# The supervised twin of zoo_demo_mae_cpu.py: demo_tiny_finetune's recipe on the same 16,384 images with their labels,
# 2 epochs (3.3 x 10^4 images): about 300/1600 of the MAE encoder's images, the paper's ratio (Appendix A.2).
_base_ = "demo_tiny_finetune.py"
epochs = 2
warmup_epochs = 0.2
num_workers = 0
checkpoint_every = 256
log_every = 16
