# End-to-end fine-tuning, MAE paper Table 9 (docs/recipes.md §2); the model files set size-specific values
# (epochs, drop path, and ViT-B's blr / layer decay) as facebookresearch/mae FINETUNE.md's commands do.
input_size = 224
batch_size = 1024
blr = 1e-3                # paper; lr = blr x batch_size / 256
betas = (0.9, 0.999)      # AdamW
weight_decay = 0.05
layer_decay = 0.75        # paper
warmup_epochs = 5
global_pool = True        # average of the patch tokens
rand_aug = "rand-m9-mstd0.5-inc1"   # RandAug(9, 0.5)
mixup = 0.8
cutmix = 1.0
smoothing = 0.1
