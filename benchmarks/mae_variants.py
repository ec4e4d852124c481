"""The MAE models ``pretrain_speed.py`` measures ours against.

- ``OfficialMAE``: the official ``models_mae.py`` (github.com/facebookresearch/mae, ``MaskedAutoencoderViT``)
  where it computes differently, written out as released: masking by two argsorts, a ``torch.ones`` mask and a
  gather; decoder unshuffle by ``repeat`` + two concatenations around a gather. The rest (timm's ``Block`` and
  ``PatchEmbed``, as the official import gives them, initialisation, patchify, loss) is ``pretrain``'s model,
  which builds and computes them as the official code does, with the same parameter names.
- ``MaskTokensInEncoder``: the paper's "w/ [M]" ablation (arXiv 2111.06377, Table 1c): the encoder sees every
  patch, the removed ones replaced by a learned mask token at the encoder's width; the decoder gets the full
  sequence and adds no mask tokens.
- ``official_optimizer``: the official ``main_pretrain.py`` optimizer, ``torch.optim.AdamW`` over
  ``add_weight_decay`` groups (timm's ``param_groups_weight_decay``), betas (0.9, 0.95), torch's default
  implementation (for-each on CUDA, a per-tensor loop on CPU).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.optim import param_groups_weight_decay

from pretrain.models_mae import MaskedAutoencoderViT, mae_kwargs


class OfficialMAE(MaskedAutoencoderViT):
    """facebookresearch/mae ``models_mae.py`` ``MaskedAutoencoderViT``: its masking, encoder and decoder passes as
    released (comments trimmed). Its constructor, initialisation, patchify and loss compute what ``pretrain``'s do
    and are inherited from there."""

    def random_masking(self, x, mask_ratio):
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        noise = torch.rand(N, L, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        cls_tokens = cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x, mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        x = x[:, 1:, :]
        return x

    def forward(self, imgs, mask_ratio=0.75):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


def official_mae(name: str, **overrides) -> OfficialMAE:
    """``mae_vit_{base,large}_patch16`` / ``mae_vit_huge_patch14`` with the official 512 x 8 decoder."""
    return OfficialMAE(**mae_kwargs(name, **overrides))


def official_optimizer(model: nn.Module, lr: float = 1.5e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=lr, betas=(0.9, 0.95))


class MaskTokensInEncoder(MaskedAutoencoderViT):
    """The "w/ [M]" ablation: mask tokens go through the encoder, the decoder inserts none."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.pos_embed.shape[-1]))  # at the encoder's width
        nn.init.normal_(self.mask_token, std=.02)

    def forward_encoder(self, x, mask_ratio, noise=None):
        x = self.patch_embed(x)  # [N, L, D]
        _, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        x = torch.where(mask.unsqueeze(-1).bool(), self.mask_token.to(x.dtype), x) + self.pos_embed[:, 1:, :]
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)  # [N, 1 + L, D]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def unshuffle(self, x, ids_restore):
        return x  # already every patch, in order


def mask_tokens_in_encoder(name: str, **overrides) -> MaskTokensInEncoder:
    return MaskTokensInEncoder(**mae_kwargs(name, **overrides))
