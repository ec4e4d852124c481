# Table 10's probe scaled to the generated classification set (128 px, 6 classes), on the demo_tiny encoder.
# lr is the paper's absolute rate (0.1 x 16384 / 256 = 6.4): LARS scales each step to the weight norm, and the
# linearly scaled rate for batch 64 (0.025) leaves the head almost untouched in a few dozen steps.
_base_ = "linprobe.py"
model = "vit_tiny_patch16"
input_size = 128
patch_size = 16
depth = 4
batch_size = 64
lr = 6.4
epochs = 20
warmup_epochs = 2
num_workers = 2
checkpoint_every = 100
