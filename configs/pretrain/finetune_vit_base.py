_base_ = "finetune.py"
model = "vit_base_patch16"
epochs = 100
drop_path = 0.1
blr = 5e-4                # the MAE repo's ViT-B recipe
layer_decay = 0.65        # the MAE repo's ViT-B recipe
batch_per_device = 32
