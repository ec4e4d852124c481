# Table 10's probe scaled to the generated classification set (64 px, 6 classes), on the demo_tiny encoder.
_base_ = "linprobe.py"
model = "vit_tiny_patch16"
input_size = 64
patch_size = 8
depth = 6
batch_size = 64
epochs = 20
warmup_epochs = 2
num_workers = 2
checkpoint_every = 100
