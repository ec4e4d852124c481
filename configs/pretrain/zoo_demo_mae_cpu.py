# The demo zoo's MAE encoder for a machine without a GPU: demo_tiny's batch and lr (chosen for CPU runs of minutes) over
# 10 epochs of the zoo's CPU plan (16,384 generated images): 1.6 x 10^5 images seen, about 35 minutes of one idle core.
_base_ = "demo_tiny.py"
epochs = 10
warmup_epochs = 1
num_workers = 0
checkpoint_every = 256
log_every = 16
