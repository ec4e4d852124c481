_base_ = "linprobe.py"
model = "vit_base_patch16"
epochs = 90
batch_per_device = 512
