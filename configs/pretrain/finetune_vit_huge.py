_base_ = "finetune.py"
model = "vit_huge_patch14"
epochs = 50
drop_path = 0.3
batch_per_device = 16
