_base_ = "linprobe.py"
model = "vit_large_patch16"
epochs = 50
batch_per_device = 512
