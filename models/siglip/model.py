"""The SigLIP / LiT two-tower forward pass as pure JAX functions over big_vision's parameter tree.

Parameters are nested dicts named like big_vision's flax modules (scanned layer layout), so a
checkpoint's `img/...` and `txt/...` subtrees are the trees these functions take. The transformer
blocks are PaliGemma's SigLIP blocks (`models/paligemma/siglip.py`): the same big_vision `vit.py`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.paligemma import siglip
from tessera.models.paligemma.configs import VisionConfig
from tessera.models.siglip.configs import ImageTowerConfig, TextTowerConfig, TwoTowerConfig

NORM_EPS = 1e-8  # two_towers.py: z / (||z|| + 1e-8)


def _dense(p, x):
    return x @ p["kernel"] + p["bias"]


def map_head(p, x):
    """big_vision `MAPHead`: one learned probe attends over the tokens, then a residual MLP."""
    probe = jnp.broadcast_to(p["probe"].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
    x = siglip.attention(p["MultiHeadDotProductAttention_0"], probe, x)
    x = x + siglip.mlp(p["MlpBlock_0"], siglip.layer_norm(x, p["LayerNorm_0"]))
    return x[:, 0]


def encode_image(params, images, cfg: ImageTowerConfig):
    """images float [B, R, R, 3] in [-1, 1] -> unnormalised embeddings [B, embed_dim]."""
    x = siglip.embed_patches(params, images, cfg.vit.patch_size)
    if cfg.pool == "tok":  # vit.py adds the posemb first, then prepends the class token
        cls = jnp.broadcast_to(params["cls"].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1)
    x = siglip.transformer(params["Transformer"], x)
    if cfg.pool == "map":
        x = map_head(params["MAPHead_0"], x)
    elif cfg.pool == "tok":
        x = x[:, 0]
    else:
        x = jnp.mean(x, axis=1)
    return _dense(params["head"], x) if cfg.out_dim else x


def encode_text(params, tokens, cfg: TextTowerConfig):
    """tokens int [N, seq_len] -> unnormalised embeddings [N, embed_dim].

    Pools the last position ("last" in text_transformer.py): with sticky-EOS padding it is an EOS.
    """
    x = jnp.take(params["Embed_0"]["embedding"], tokens, axis=0)
    x = x + params["pos_embedding"].astype(x.dtype)
    x = siglip.transformer(params["Encoder_0"], x)[:, -1]
    return _dense(params["head"], x) if cfg.out_dim else x


def normalize(z):
    return z / (jnp.linalg.norm(z, axis=-1, keepdims=True) + NORM_EPS)


def logits(params, image_embeddings, text_embeddings):
    """Normalised [B, D] x [C, D] -> [B, C]: cosine * exp(t) + b (b = 0 without a bias)."""
    out = image_embeddings @ text_embeddings.T * jnp.exp(params["t"][0])
    return out + params["b"][0] if "b" in params else out


def init_params(seed: int, cfg: TwoTowerConfig, dtype=np.float32) -> dict:
    """Random numpy parameters in big_vision's tree (scanned layout); for tests and benchmarks."""
    rng = np.random.default_rng(seed)

    def normal(shape, scale):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    vit = cfg.image.vit
    img = siglip.init_params(rng, vit, cfg.image.out_dim, dtype)
    if cfg.image.pool == "map":
        one = _encoder_params(rng, vit.width, 1, vit.mlp_dim, vit.num_heads, dtype)["encoderblock"]
        one = jax.tree_util.tree_map(lambda a: a[0], one)
        img["MAPHead_0"] = {"probe": normal((1, 1, vit.width), 1 / np.sqrt(vit.width)),
                            "MultiHeadDotProductAttention_0": one["MultiHeadDotProductAttention_0"],
                            "LayerNorm_0": one["LayerNorm_0"], "MlpBlock_0": one["MlpBlock_0"]}
    elif cfg.image.pool == "tok":
        img["cls"] = normal((1, 1, vit.width), 0.02)
    t = cfg.text
    txt = {"Embed_0": {"embedding": normal((t.vocab_size, t.width), 1 / np.sqrt(t.width))},
           "pos_embedding": normal((1, t.seq_len, t.width), 0.02),
           "Encoder_0": _encoder_params(rng, t.width, t.depth, t.mlp_dim, t.num_heads, dtype)}
    if t.out_dim:
        txt["head"] = {"kernel": normal((t.width, t.out_dim), 1 / np.sqrt(t.width)),
                       "bias": normal((t.out_dim,), 0.02)}
    params = {"img": img, "txt": txt, "t": np.full((1,), np.log(10.0), np.float32)}
    if cfg.has_bias:
        params["b"] = np.full((1,), -2.0, np.float32)
    return params


def _encoder_params(rng, width, depth, mlp_dim, num_heads, dtype) -> dict:
    """A `vit.Encoder` subtree (blocks + encoder_norm): the text tower's Encoder_0 has the ViT's
    layout, so PaliGemma's ViT initialiser makes it (its patch embedding is discarded)."""
    vit = VisionConfig(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                       patch_size=1, image_size=1)
    return siglip.init_params(rng, vit, None, dtype)["Transformer"]
