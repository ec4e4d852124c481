"""The demo's paper plan as a grid (``mae-transfer demo --plan paper``; mae_transfer/demo.py PLANS["paper"]).

Generated data, MAE pretraining and the supervised baseline of the demo's ViT (ViT-Tiny width, 4 blocks, 128 px),
then Mask R-CNN and UperNet from MAE / supervised / random init, three seeds. Every run takes one CPU and no GPU:

    mae-transfer grid configs/grid/demo_paper.py --out output/grid-paper --executor local
"""
_data = "{out}/data"
# One CPU and one torch thread per run: its numbers do not depend on how many runs share the machine.
resources = dict(nodes=1, gpus_per_node=0, cpus_per_task=1, mem_gb=4, timeout_min=60)

_detection = {"mae": "configs/detection/demo_tiny.py", "supervised": "configs/detection/demo_tiny_supervised.py",
              "random": "configs/detection/demo_tiny_random.py"}
_encoders = {"mae": "{out}/pretrain/mae/encoder.pth", "supervised": "{out}/pretrain/supervised/encoder.pth",
             "random": None}
_pretraining = {"mae": ["pretrain/mae"], "supervised": ["pretrain/supervised"], "random": []}

#        iterations (detection, segmentation), schedule steps and warm-ups at the configs' fractions of the run
_detection_schedule = ["train.max_iter=400", "lr_multiplier.scheduler.num_updates=400",
                       "lr_multiplier.scheduler.milestones=[356, 385]", "train.checkpointer.period=400"]
_segmentation_schedule = ["train_cfg.max_iters=600", "train_cfg.val_interval=600",
                          "default_hooks.checkpoint.interval=600", "param_scheduler.0.end=30",
                          "param_scheduler.1.begin=30", "param_scheduler.1.end=600"]
_seeds = [0, 1, 2]

runs = [
    dict(name="data", kind="command", creates=_data + "/manifest.json",
         command=["generate-data", _data, "--image-size", "128", "--num-pretrain", "2048", "--num-classify-train",
                  "0", "--num-classify-val", "20", "--classify-image-size", "128", "--num-coco-train", "192",
                  "--num-coco-val", "48", "--num-ade-train", "192", "--num-ade-val", "48", "--max-objects", "4"]),
    dict(name="pretrain/mae", kind="pretrain", config="configs/pretrain/demo_tiny.py", after=["data"],
         export="{out}/pretrain/mae/encoder.pth",
         overrides=["data_path=" + _data + "/pretrain", "dataset=synthetic_pretrain", "num_workers=0",
                    "tensorboard=False", "epochs=24", "warmup_epochs=2.4"]),
    dict(name="pretrain/supervised", kind="finetune", config="configs/pretrain/demo_tiny_finetune.py",
         after=["data"], export="{out}/pretrain/supervised/encoder.pth",
         overrides=["data_path=" + _data + "/pretrain", "val_path=" + _data + "/classify/val",
                    "dataset=synthetic_pretrain", "num_workers=0", "tensorboard=False", "epochs=6",
                    "warmup_epochs=0.6"]),
] + [
    dict(name=f"detection/{init}", kind="detect", config=_detection[init], init=init, weights=_encoders[init],
         seeds=_seeds, after=["data"] + _pretraining[init], overrides=_detection_schedule,
         args=["--train-json", _data + "/coco/annotations/instances_train.json", "--train-images",
               _data + "/coco/train", "--val-json", _data + "/coco/annotations/instances_val.json",
               "--val-images", _data + "/coco/val", "--dataset-name", "synthetic_coco"])
    for init in ("mae", "supervised", "random")
] + [
    dict(name=f"segmentation/{init}", kind="segment", config="configs/segmentation/demo_tiny.py", init=init,
         weights=_encoders[init], seeds=_seeds, after=["data"] + _pretraining[init],
         overrides=_segmentation_schedule, args=["--data-root", _data + "/ade/ADEChallengeData2016"])
    for init in ("mae", "supervised", "random")
]
