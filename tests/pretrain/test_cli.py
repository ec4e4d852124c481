"""The pretrain commands' own checks on their arguments."""
import os

import pytest
import torch

from pretrain.cli import export


@pytest.mark.parametrize("link", ["same path", "symlink", "hard link"])
def test_export_refuses_to_write_over_the_checkpoint_it_reads(tmp_path, mae_release_state, capsys, link):
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"model": mae_release_state(width=32, depth=2), "optimizer": {}, "epoch": 3}, checkpoint)
    before = checkpoint.read_bytes()
    out = {"same path": checkpoint, "symlink": tmp_path / "via_symlink.pth",
           "hard link": tmp_path / "via_hard_link.pth"}[link]
    if link == "symlink":
        out.symlink_to(checkpoint)
    elif link == "hard link":
        os.link(checkpoint, out)
    assert export([str(checkpoint), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"mae-transfer export: error: --out {out} is the input {checkpoint}; outputs "
                                       "never replace an input: give another path\n")
    assert checkpoint.read_bytes() == before
    assert export([str(checkpoint), "--out", str(tmp_path / "encoder.pth")]) == 0  # another file is fine
