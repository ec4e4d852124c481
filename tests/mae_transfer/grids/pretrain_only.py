"""Generated data and one MAE pretraining long enough (300 steps, a checkpoint every 2: more
than the 10 s a cancelled job has before SIGKILL) to be killed mid-way."""
_base_ = "tiny.py"
runs = [
    dict(name="data", kind="command", creates="{out}/data/manifest.json",
         command=["generate-data", "{out}/data", "--image-size", "64", "--num-pretrain", "16", "--num-classify-val",
                  "2", "--classify-image-size", "64", "--num-coco-train", "2", "--num-coco-val", "2",
                  "--num-ade-train", "2", "--num-ade-val", "2", "--max-objects", "2"]),
    dict(name="pretrain/mae", kind="pretrain", config="configs/pretrain/demo_tiny.py", after=["data"],
         overrides=["data_path={out}/data/pretrain", "dataset=synthetic_pretrain", "num_workers=0",
                    "tensorboard=False", "input_size=64", "batch_size=8", "epochs=150", "warmup_epochs=0",
                    "checkpoint_every=2"]),
]
