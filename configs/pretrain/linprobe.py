# Linear probe, MAE paper Table 10 (docs/recipes.md §2): frozen encoder, cls token feature,
# BatchNorm1d(affine=False, eps 1e-6) + linear head, LARS.
input_size = 224
batch_size = 16384
blr = 0.1                 # lr = blr x batch_size / 256
momentum = 0.9
weight_decay = 0.0
warmup_epochs = 10
