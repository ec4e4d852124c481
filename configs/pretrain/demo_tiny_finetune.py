# Table 9's fine-tuning scaled to the generated classification set (64 px, 6 classes), on the demo_tiny encoder.
# Without a checkpoint the same run is the supervised-from-scratch baseline.
_base_ = "finetune.py"
model = "vit_tiny_patch16"
input_size = 64
patch_size = 8
depth = 6
drop_path = 0.1
batch_size = 64
epochs = 20
warmup_epochs = 2
num_workers = 2
checkpoint_every = 100
