"""Architecture parity: Tessera's ViT classifier (`vit:PATH`) vs timm's `VisionTransformer`.

For each case: random weights (every array perturbed) are written as a released `.npz` (the
original ViT / AugReg layout or big_vision's), loaded by Tessera's real loader (`models.vit.load`)
and by timm's own npz reader (`vision_transformer._load_weights`, what `load_pretrained` runs on
Google's files), and both run the same images in float32 on CPU. timm's reader knows neither
ViT-22B's parallel block nor QK norm nor missing QKV biases, so for those cases the arrays are
copied into timm's `ParallelScalingBlock` / `Block` by name (every tensor, strictly). timm gets
flax's tanh-GELU (`act_layer='gelu_tanh'`), since that is what the JAX models were trained with.
Passes when max |diff| / max |logit| < 1e-4 everywhere.

  pip install -e '.[parity]'
  python benchmarks/parity_vit.py [--seed 0] [--images 4]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.timm_reference import (compare, conv, import_timm, linear, load_exact,  # noqa: E402
                                       tensor)


def cases():
    """(name, config, layout, how timm gets the weights)."""
    from tessera.models.vit.configs import VIT_22B_OPTIONS, variant

    def small(name, image_size=64, **kw):  # a published width, 3 layers, 10 classes (CPU seconds)
        return dataclasses.replace(variant(name, image_size=image_size, num_classes=10, **kw),
                                   depth=3)
    return [
        ("Ti/16 224px original ViT/AugReg layout, cls token (197 posembs)",
         small("Ti/16", 224, pool="tok", posemb_with_cls=True), "original", "timm _load_weights"),
        ("S/16 big_vision layout, gap", small("S/16", pool="gap"), "big_vision",
         "timm _load_weights"),
        ("Ti/16 big_vision layout, MAP head", small("Ti/16", pool="map"), "big_vision",
         "timm _load_weights"),
        ("Ti/8 big_vision layout, scanned blocks, cls token", small("Ti/8", pool="tok"),
         "big_vision scanned", "timm _load_weights"),
        ("Ti/16 ViT-22B block: parallel + QK norm + no QKV/LN bias",
         small("Ti/16", pool="gap", **VIT_22B_OPTIONS), "big_vision", "by name"),
        ("Ti/16 sequential block + QK norm, no QKV bias",
         small("Ti/16", pool="tok", qk_norm=True, qkv_bias=False), "big_vision", "by name"),
    ]


def timm_model(timm, cfg):
    from timm.models.vision_transformer import Block, ParallelScalingBlock, VisionTransformer
    return VisionTransformer(
        img_size=cfg.image_size, patch_size=cfg.patch_size, embed_dim=cfg.width, depth=cfg.depth,
        num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_dim / cfg.width, num_classes=cfg.num_classes,
        global_pool={"tok": "token", "gap": "avg", "map": "map"}[cfg.pool],
        class_token=cfg.pool == "tok", no_embed_class=not cfg.posemb_with_cls,
        fc_norm=False, qkv_bias=cfg.qkv_bias, qk_norm=cfg.qk_norm, act_layer="gelu_tanh",
        block_fn=ParallelScalingBlock if cfg.parallel_block else Block).eval()


def _norm(p: dict, width: int) -> tuple:
    bias = p.get("bias", np.zeros(width, np.float32))  # flax LayerNorm(use_bias=False)
    return tensor(p["scale"]), tensor(bias)


def timm_state(params: dict, cfg) -> dict:
    """The flax tree (scanned) as timm state-dict entries, for the cases its reader cannot load."""
    w, hd = cfg.width, cfg.head_dim
    state = {"patch_embed.proj.weight": conv(params["embedding"]["kernel"]),
             "patch_embed.proj.bias": tensor(params["embedding"]["bias"]),
             "pos_embed": tensor(params["pos_embedding"])}
    if cfg.pool == "tok":
        state["cls_token"] = tensor(params["cls"])
    state["norm.weight"], state["norm.bias"] = _norm(params["Transformer"]["encoder_norm"], w)
    state["head.weight"], state["head.bias"] = linear(params["head"]["kernel"]), tensor(
        params["head"]["bias"])
    blocks = params["Transformer"]["encoderblock"]
    for i in range(cfg.depth):
        b = {k: v for k, v in _layer(blocks, i).items()}
        attn, mlp, pre = b["MultiHeadDotProductAttention_0"], b["MlpBlock_0"], f"blocks.{i}."
        qkv_w = [attn[n]["kernel"].reshape(w, w).T for n in ("query", "key", "value")]
        qkv_b = [attn[n]["bias"].reshape(w) if cfg.qkv_bias else np.zeros(w, np.float32)
                 for n in ("query", "key", "value")]
        if cfg.parallel_block:  # in_proj = [MLP fc1 | q | k | v], out projections apart
            state[pre + "in_norm.weight"], state[pre + "in_norm.bias"] = _norm(b["LayerNorm_0"], w)
            state[pre + "in_proj.weight"] = tensor(np.concatenate(
                [mlp["Dense_0"]["kernel"].T] + qkv_w))
            if cfg.qkv_bias:
                state[pre + "in_proj.bias"] = tensor(
                    np.concatenate([mlp["Dense_0"]["bias"]] + qkv_b))
            else:
                state[pre + "mlp_bias"] = tensor(mlp["Dense_0"]["bias"])
            state[pre + "attn_out_proj.weight"] = linear(attn["out"]["kernel"])
            state[pre + "attn_out_proj.bias"] = tensor(attn["out"]["bias"])
            state[pre + "mlp_out_proj.weight"] = linear(mlp["Dense_1"]["kernel"])
            state[pre + "mlp_out_proj.bias"] = tensor(mlp["Dense_1"]["bias"])
            qk = pre
        else:
            state[pre + "norm1.weight"], state[pre + "norm1.bias"] = _norm(b["LayerNorm_0"], w)
            state[pre + "norm2.weight"], state[pre + "norm2.bias"] = _norm(b["LayerNorm_1"], w)
            state[pre + "attn.qkv.weight"] = tensor(np.concatenate(qkv_w))
            if cfg.qkv_bias:
                state[pre + "attn.qkv.bias"] = tensor(np.concatenate(qkv_b))
            state[pre + "attn.proj.weight"] = linear(attn["out"]["kernel"])
            state[pre + "attn.proj.bias"] = tensor(attn["out"]["bias"])
            for r in (0, 1):
                state[f"{pre}mlp.fc{r + 1}.weight"] = linear(mlp[f"Dense_{r}"]["kernel"])
                state[f"{pre}mlp.fc{r + 1}.bias"] = tensor(mlp[f"Dense_{r}"]["bias"])
            qk = pre + "attn."
        if cfg.qk_norm:  # flax query_ln / key_ln have a scale only
            for ours, theirs in (("query_ln", "q_norm"), ("key_ln", "k_norm")):
                state[f"{qk}{theirs}.weight"], state[f"{qk}{theirs}.bias"] = _norm(attn[ours], hd)
    return state


def _layer(tree, i):
    return {k: _layer(v, i) if isinstance(v, dict) else v[i] for k, v in tree.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)

    import jax
    import torch
    timm = import_timm()
    from timm.models.vision_transformer import _load_weights

    from tessera.models import vit
    from tessera.models.vit import checkpoint
    from tessera.models.vit.model import init_params

    jax.config.update("jax_default_matmul_precision", "highest")  # float32 matmuls on GPU/TPU too
    torch.manual_seed(args.seed)
    print(f"ViT parity vs timm {timm.__version__} (torch {torch.__version__}), float32 CPU, "
          f"random weights (seed {args.seed}), {args.images} images; 3 layers, 10 classes, "
          "64 px unless said")
    ok = True
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for n, (name, cfg, layout, how) in enumerate(cases()):
            params = init_params(args.seed + n, cfg)
            path = f"{tmp}/case{n}.npz"
            checkpoint.save_checkpoint(path, params, layout=layout.split()[0],
                                       scanned=layout.endswith("scanned"))
            ours_model = vit.load(path)
            assert ours_model.cfg == cfg, (ours_model.cfg, cfg)
            reference = timm_model(timm, cfg)
            if how == "by name":
                load_exact(reference, timm_state(params, cfg))
            else:
                _load_weights(reference, path)
            rng = np.random.default_rng(args.seed + n)
            images = rng.uniform(-1, 1, (args.images, cfg.image_size, cfg.image_size, 3))
            images = images.astype(np.float32)
            ours = np.asarray(ours_model.forward(ours_model.params, images)[0])
            theirs = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
            ok &= compare(f"{name} [{how}]", ours, theirs)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
