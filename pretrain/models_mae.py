"""Masked autoencoder with a ViT encoder (He et al., arXiv 2111.06377; Sec. 3; docs/recipes.md §1).

Patchify, embed, add the fixed sin-cos position, randomly drop 75 % of the patches per sample, run the
encoder on the visible ones only, then let a light decoder fill the gaps with mask tokens and predict the
pixels of every patch. The loss is the MSE over the removed patches.

Parameter names are those of the official ``models_mae.py`` (timm's ``Block`` and ``PatchEmbed``), so an
official ``*_full.pth`` loads as it is, and the encoder part is what ``backbone.load_pretrained`` reads.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block, PatchEmbed

from backbone import VIT_SIZES, ViTSize

from .pos_embed import get_2d_sincos_pos_embed


class MaskedAutoencoderViT(nn.Module):
    """Masked autoencoder with a Vision Transformer encoder.

    Keywords, parameters and results as the official class; masking and unshuffling take fewer copies (one
    argsort, one scatter, one gather each way; see ``random_masking`` and ``unshuffle``).
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3,
                 embed_dim=1024, depth=24, num_heads=16,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
                 mlp_ratio=4., norm_layer=partial(nn.LayerNorm, eps=1e-6), norm_pix_loss=False):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide img_size {img_size}")
        for name, dim, heads in (("", embed_dim, num_heads), ("decoder_", decoder_embed_dim, decoder_num_heads)):
            if dim % heads:
                raise ValueError(f"{name}num_heads {heads} does not divide {name}embed_dim {dim}")
        self.in_chans = in_chans

        # MAE encoder
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)  # fixed
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(depth)])
        self.norm = norm_layer(embed_dim)

        # MAE decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim),
                                              requires_grad=False)  # fixed
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans, bias=True)  # decoder to patch

        self.norm_pix_loss = norm_pix_loss
        self.initialize_weights()

    def initialize_weights(self):
        grid = self.patch_embed.grid_size[0]
        self.pos_embed.data.copy_(
            torch.from_numpy(get_2d_sincos_pos_embed(self.pos_embed.shape[-1], grid, cls_token=True)).float()[None])
        self.decoder_pos_embed.data.copy_(
            torch.from_numpy(get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], grid, cls_token=True)).float()[None])

        # the patch embedding is a Linear layer applied to each flattened patch: initialise it as one
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        # timm's trunc_normal_(std=.02) is effectively normal_(std=.02) as its cutoff (2.) is so far out
        nn.init.normal_(self.cls_token, std=.02)
        nn.init.normal_(self.mask_token, std=.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)  # as the official JAX ViT
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.zeros_(m.bias)
            nn.init.ones_(m.weight)

    @property
    def patch_size(self) -> int:
        return self.patch_embed.patch_size[0]

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def patchify(self, imgs):
        """imgs [N, C, H, W] -> x [N, L, p*p*C], each patch flattened as (row, column, channel)."""
        p, c = self.patch_size, self.in_chans
        h, w = imgs.shape[2] // p, imgs.shape[3] // p
        if imgs.shape[2] != h * p or imgs.shape[3] != w * p:
            raise ValueError(f"image size {tuple(imgs.shape[2:])} is not a multiple of the patch size {p}")
        x = imgs.reshape(imgs.shape[0], c, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(imgs.shape[0], h * w, p * p * c)

    def unpatchify(self, x):
        """x [N, L, p*p*C] -> imgs [N, C, H, W] for a square grid of L patches."""
        p, c = self.patch_size, self.in_chans
        h = w = int(x.shape[1] ** .5)
        if h * w != x.shape[1]:
            raise ValueError(f"{x.shape[1]} patches do not form a square grid")
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, w * p)

    def random_masking(self, x, mask_ratio, noise=None):
        """Per-sample random masking by argsort of uniform noise: the ``int(L * (1 - mask_ratio))`` tokens
        with the smallest noise stay.

        x: [N, L, D]; noise: optional [N, L] that fixes the mask.
        Returns the kept tokens [N, len_keep, D], the binary mask [N, L] (0 keep, 1 remove, original order)
        and ids_restore [N, L], which undoes the shuffle.
        """
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(N, L, device=x.device)  # noise in [0, 1]
        elif noise.shape != (N, L):
            raise ValueError(f"noise must have shape (N, L) = {(N, L)}, got {tuple(noise.shape)}")
        ids_shuffle = torch.argsort(noise.to(x.device), dim=1)  # ascend: small is keep, large is remove
        # the inverse permutation by one scatter (the official code argsorts a second time: same result)
        positions = torch.arange(L, device=x.device).expand(N, -1)
        ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, positions)

        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).expand(-1, -1, D))

        mask = (ids_restore >= len_keep).float()  # 1 where the token's rank is past the kept ones (fp32, as official)
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio, noise=None):
        x = self.patch_embed(x)  # [N, L, D]
        x = x + self.pos_embed[:, 1:, :]  # position first, then masking
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)  # [N, len_keep, D]

        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)  # [N, 1 + len_keep, D]
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x, mask, ids_restore

    def unshuffle(self, x, ids_restore):
        """[N, 1 + len_keep, Dd] -> [N, 1 + L, Dd]: the cls token, then per patch its encoded token if it was
        kept, else the mask token, in the original order. One concatenation and one gather (the official
        code: two concatenations around the gather, same values)."""
        N, visible, Dd = x.shape
        mask_tokens = self.mask_token.to(x.dtype).expand(N, ids_restore.shape[1] + 1 - visible, -1)
        index = torch.cat([ids_restore.new_zeros(N, 1), ids_restore + 1], dim=1)  # cls stays first
        return torch.gather(torch.cat([x, mask_tokens], dim=1), 1, index.unsqueeze(-1).expand(-1, -1, Dd))

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)  # [N, 1 + len_keep, Dd]
        x = self.unshuffle(x, ids_restore)  # [N, 1 + L, Dd]
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)  # [N, 1 + L, p*p*C]
        return x[:, 1:, :]  # drop the cls token

    def forward_loss(self, imgs, pred, mask):
        """imgs [N, C, H, W]; pred [N, L, p*p*C]; mask [N, L], 0 keep, 1 remove."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.e-6) ** .5
        loss = (pred.float() - target) ** 2
        loss = loss.mean(dim=-1)  # [N, L], mean loss per patch
        return (loss * mask).sum() / mask.sum()  # mean over removed patches only

    def forward(self, imgs, mask_ratio=0.75, noise=None):
        if not 0 <= mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)  # [N, L, p*p*C]
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


# MAE model names by encoder (``vit_base_patch16``), each a size of backbone's registry at its MAE patch
ENCODERS = {f"{name}_patch{size.mae_patch}": name for name, size in VIT_SIZES.items()}
MAE_MODELS = tuple(f"mae_{name}" for name in ENCODERS)


def _size_of(name: str) -> ViTSize:
    key = name.removeprefix("mae_")
    if key not in ENCODERS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(ENCODERS) + list(MAE_MODELS)}")
    return VIT_SIZES[ENCODERS[key]]


def _given(kwargs: dict, overrides: dict) -> dict:
    return {**kwargs, **{k: v for k, v in overrides.items() if v is not None}}


def encoder_kwargs(name: str, **overrides) -> dict:
    """patch_size / embed_dim / depth / num_heads of an encoder (``vit_base_patch16`` or
    ``mae_vit_base_patch16``), with overrides that are not None applied."""
    size = _size_of(name)
    return _given(dict(patch_size=size.mae_patch, embed_dim=size.width, depth=size.depth, num_heads=size.heads),
                  overrides)


def decoder_kwargs(name: str, **overrides) -> dict:
    """decoder_embed_dim / decoder_depth / decoder_num_heads of an MAE (the official 512-wide, 8-block, 16-head
    decoder for every size), with overrides that are not None applied."""
    size = _size_of(name)
    return _given(dict(decoder_embed_dim=size.decoder_width, decoder_depth=size.decoder_depth,
                       decoder_num_heads=size.decoder_heads), overrides)


def mae_kwargs(name: str, **overrides) -> dict:
    """The constructor keywords of an MAE by name (``mae_vit_base_patch16``, ...): its encoder and its size's
    decoder, with overrides that are not None applied."""
    if not name.startswith("mae_"):
        raise ValueError(f"unknown MAE model {name!r}; choose one of {list(MAE_MODELS)}")
    return decoder_kwargs(name, **encoder_kwargs(name, **overrides))


def build_mae(name: str, **overrides) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(**mae_kwargs(name, **overrides))


def mae_vit_tiny_patch16(**kwargs):
    return build_mae("mae_vit_tiny_patch16", **kwargs)


def mae_vit_small_patch16(**kwargs):
    return build_mae("mae_vit_small_patch16", **kwargs)


def mae_vit_base_patch16(**kwargs):
    return build_mae("mae_vit_base_patch16", **kwargs)


def mae_vit_large_patch16(**kwargs):
    return build_mae("mae_vit_large_patch16", **kwargs)


def mae_vit_huge_patch14(**kwargs):
    return build_mae("mae_vit_huge_patch14", **kwargs)

