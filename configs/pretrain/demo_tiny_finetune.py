# Table 9's fine-tuning scaled to the generated classification set (128 px, 6 classes), on the demo_tiny encoder.
# Without a checkpoint the same run is the supervised-from-scratch baseline. blr 4x the paper's: the schedule is
# a few dozen steps, not 125k.
_base_ = "finetune.py"
model = "vit_tiny_patch16"
input_size = 128
patch_size = 16
depth = 4
drop_path = 0.1
batch_size = 64
blr = 4e-3
epochs = 20
warmup_epochs = 2
num_workers = 2
checkpoint_every = 100
