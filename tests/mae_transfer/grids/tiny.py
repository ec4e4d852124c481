"""The smallest grid with every kind of dependency, for the grid tests: data, MAE pretraining + export, then one
Mask R-CNN run from the MAE encoder and one UperNet run from random init, a few iterations each."""
_data = "{out}/data"
resources = dict(nodes=1, gpus_per_node=0, cpus_per_task=1, mem_gb=2, timeout_min=20)

runs = [
    dict(name="data", kind="command", creates=_data + "/manifest.json",
         command=["generate-data", _data, "--image-size", "64", "--num-pretrain", "16", "--num-classify-train",
                  "0", "--num-classify-val", "2", "--classify-image-size", "64", "--num-coco-train", "4",
                  "--num-coco-val", "2", "--num-ade-train", "4", "--num-ade-val", "2", "--max-objects", "2"]),
    dict(name="pretrain/mae", kind="pretrain", config="configs/pretrain/demo_tiny.py", after=["data"],
         export="{out}/pretrain/mae/encoder.pth",
         overrides=["data_path=" + _data + "/pretrain", "dataset=synthetic_pretrain", "num_workers=0",
                    "tensorboard=False", "input_size=64", "batch_size=8", "epochs=1", "warmup_epochs=0"]),
    dict(name="detection/mae", kind="detect", config="configs/detection/demo_tiny.py", init="mae",
         weights="{out}/pretrain/mae/encoder.pth", seeds=[0], after=["pretrain/mae"],
         overrides=["train.max_iter=4", "lr_multiplier.scheduler.num_updates=4",
                    "lr_multiplier.scheduler.milestones=[2, 3]", "train.checkpointer.period=4"],
         args=["--train-json", _data + "/coco/annotations/instances_train.json", "--train-images",
               _data + "/coco/train", "--val-json", _data + "/coco/annotations/instances_val.json",
               "--val-images", _data + "/coco/val", "--dataset-name", "synthetic_coco"]),
    dict(name="segmentation/random", kind="segment", config="configs/segmentation/demo_tiny.py", init="random",
         seeds=[0], after=["data"], args=["--data-root", _data + "/ade/ADEChallengeData2016"],
         overrides=["train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2",
                    "param_scheduler.0.end=1", "param_scheduler.1.begin=1", "param_scheduler.1.end=2"]),
]
