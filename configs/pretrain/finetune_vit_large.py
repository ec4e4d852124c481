_base_ = "finetune.py"
model = "vit_large_patch16"
epochs = 50
drop_path = 0.2
batch_per_device = 32
