"""The demo's quick plan as a grid (``mae-transfer demo --quick``: the demo reads its sizes from here).

Generated data, MAE pretraining and the supervised baseline of the demo's ViT (ViT-Tiny width, 4 blocks, 128 px),
then Mask R-CNN and UperNet from MAE / supervised / random init, one run per seed. Every run takes one CPU and no
GPU. configs/grid/demo.py and demo_paper.py are these runs with the other plans' ``params`` and ``seeds``:

    mae-transfer grid configs/grid/demo_quick.py --out output/grid-quick --executor local
    mae-transfer grid configs/grid/demo_quick.py --out output/grid-quick --recipe-search   # + search, test split
"""
seeds = 1
params = dict(
    # generated data (mae-transfer generate-data): images; classification, COCO and ADE20K sets (train / val /
    # test: the recipe search chooses on val and reports on test)
    num_pretrain=256, num_classify_val=4, num_scenes_train=48, num_scenes_val=8, num_scenes_test=8,
    # MAE and supervised epochs, their warm-ups at the configs' fraction of the run
    mae_epochs=6, mae_warmup=0.6, supervised_epochs=4, supervised_warmup=0.4,
    # Mask R-CNN iterations and lr steps, UperNet iterations and warm-up, at the configs' fractions of the run
    detection_iters=40, detection_steps="[36, 39]", segmentation_iters=30, segmentation_warmup=2,
)
# One CPU and one torch thread per run: its numbers do not depend on how many runs share the machine.
resources = dict(nodes=1, gpus_per_node=0, cpus_per_task=1, mem_gb=4, timeout_min=60)

_data = "{out}/data"
_detection = {"mae": "configs/detection/demo_tiny.py", "supervised": "configs/detection/demo_tiny_supervised.py",
              "random": "configs/detection/demo_tiny_random.py"}
_encoders = {"mae": "{out}/pretrain/mae/encoder.pth", "supervised": "{out}/pretrain/supervised/encoder.pth",
             "random": None}
_pretraining = {"mae": ["pretrain/mae"], "supervised": ["pretrain/supervised"], "random": []}
_pretrain_data = ["data_path=" + _data + "/pretrain", "dataset=synthetic_pretrain", "num_workers=0",
                  "tensorboard=False"]

runs = [
    dict(name="data", kind="command", creates=_data + "/manifest.json",
         command=["generate-data", _data, "--image-size", "128", "--num-pretrain", "{num_pretrain}",
                  "--num-classify-train", "0", "--num-classify-val", "{num_classify_val}", "--classify-image-size",
                  "128", "--num-coco-train", "{num_scenes_train}", "--num-coco-val", "{num_scenes_val}",
                  "--num-ade-train", "{num_scenes_train}", "--num-ade-val", "{num_scenes_val}", "--num-coco-test",
                  "{num_scenes_test}", "--num-ade-test", "{num_scenes_test}", "--max-objects", "4"]),
    dict(name="pretrain/mae", kind="pretrain", config="configs/pretrain/demo_tiny.py", after=["data"],
         export="{out}/pretrain/mae/encoder.pth",
         overrides=_pretrain_data + ["epochs={mae_epochs}", "warmup_epochs={mae_warmup}"]),
    dict(name="pretrain/supervised", kind="finetune", config="configs/pretrain/demo_tiny_finetune.py",
         after=["data"], export="{out}/pretrain/supervised/encoder.pth",
         overrides=_pretrain_data + ["val_path=" + _data + "/classify/val", "epochs={supervised_epochs}",
                                     "warmup_epochs={supervised_warmup}"]),
] + [
    dict(name=f"detection/{init}", kind="detect", config=_detection[init], init=init, weights=_encoders[init],
         seeds=[0], after=["data"] + _pretraining[init],
         overrides=["train.max_iter={detection_iters}", "lr_multiplier.scheduler.num_updates={detection_iters}",
                    "lr_multiplier.scheduler.milestones={detection_steps}",
                    "train.checkpointer.period={detection_iters}"],
         args=["--train-json", _data + "/coco/annotations/instances_train.json", "--train-images",
               _data + "/coco/train", "--val-json", _data + "/coco/annotations/instances_val.json",
               "--val-images", _data + "/coco/val", "--dataset-name", "synthetic_coco"])
    for init in ("mae", "supervised", "random")
] + [
    dict(name=f"segmentation/{init}", kind="segment", config="configs/segmentation/demo_tiny.py", init=init,
         weights=_encoders[init], seeds=[0], after=["data"] + _pretraining[init],
         overrides=["train_cfg.max_iters={segmentation_iters}", "train_cfg.val_interval={segmentation_iters}",
                    "default_hooks.checkpoint.interval={segmentation_iters}",
                    "param_scheduler.0.end={segmentation_warmup}", "param_scheduler.1.begin={segmentation_warmup}",
                    "param_scheduler.1.end={segmentation_iters}"],
         args=["--data-root", _data + "/ade/ADEChallengeData2016"])
    for init in ("mae", "supervised", "random")
]

# --recipe-search (mae_transfer/search.py): besides each init's published recipe, the same points for every init,
# per task (4: lr x layer decay; weight decay and schedule stay the init's), chosen on val by APbox / mIoU. The
# points bracket the published recipes: detection's MAE lr 1e-4 with layer decay 0.7, supervised 0.8e-4 and random
# 1.6e-4 without (ViTDet Table 11); segmentation's 1e-3 (the demo's) with layer decay 0.65 for every init.
search = dict(
    detect=dict(lr=[1e-4, 2e-4], layer_decay=[0.75, 1.0]),
    segment=dict(lr=[1e-3, 2e-3], layer_decay=[0.65, 0.9]),
)
# The split the chosen and the published recipes are reported on: the scenes of the test draw.
test_split = dict(
    detect=dict(args=["--val-json", _data + "/coco/annotations/instances_test.json", "--val-images",
                      _data + "/coco/test"]),
    segment=dict(args=["--data-root", _data + "/ade/ADEChallengeData2016"],
                 overrides=["test_dataloader.dataset.data_prefix.img_path=images/test",
                            "test_dataloader.dataset.data_prefix.seg_map_path=annotations/test",
                            "run_record.dataset=synthetic_ade_test"]),
)
