# MAE pretraining, MAE paper Table 8 and facebookresearch/mae PRETRAIN.md (docs/recipes.md §2). Not the official
# main_pretrain.py argparse defaults (blr 1e-3, 400 epochs, norm_pix_loss off). Model files name the encoder on top of this.
input_size = 224
mask_ratio = 0.75
norm_pix_loss = True
crop_scale = (0.2, 1.0)   # RandomResizedCrop (bicubic) area range, then a horizontal flip
batch_size = 4096         # effective batch per step: batch_per_device x devices x accumulation
blr = 1.5e-4              # lr = blr x batch_size / 256
betas = (0.9, 0.95)       # AdamW
weight_decay = 0.05       # none on 1-D parameters (norms, biases)
epochs = 800              # the released weights: 1600
warmup_epochs = 40
