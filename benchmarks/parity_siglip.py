"""Architecture parity: Tessera's JAX SigLIP two-tower model vs Hugging Face `SiglipModel`.

Builds a small random `SiglipConfig` in PyTorch (every weight perturbed, so no zero bias or unit
LayerNorm hides a transposed kernel), converts its state dict to big_vision's npz layout
(`params/img/...`, `params/txt/...`, `params/t`, `params/b`, per-layer blocks), loads that file
through Tessera's real loader (`models.siglip.checkpoint`), runs both models on the same images and
token ids in float32 on CPU and prints max |diff| for the image embeddings, the text embeddings and
the zero-shot logits (divided by the logit scale exp(t)). Passes when all are < 1e-4.

  pip install -e '.[parity]'   # torch==2.13.0 (CPU) and transformers; not needed by the tests
  python benchmarks/parity_siglip.py [--seed 0] [--image-size 64 --patch-size 16]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

TOLERANCE = 1e-4


def _attention(sd: dict, prefix: str, out: str, heads: int, packed: bool = False) -> dict:
    """torch q/k/v/out Linear (or nn.MultiheadAttention's packed in_proj) -> flax DenseGeneral."""
    if packed:
        w, b = sd.pop(prefix + "in_proj_weight"), sd.pop(prefix + "in_proj_bias")
        qkv = dict(zip(("query", "key", "value"), zip(np.split(w, 3), np.split(b, 3))))
        o_w, o_b = sd.pop(prefix + "out_proj.weight"), sd.pop(prefix + "out_proj.bias")
    else:
        qkv = {bv: (sd.pop(f"{prefix}{hf}_proj.weight"), sd.pop(f"{prefix}{hf}_proj.bias"))
               for bv, hf in (("query", "q"), ("key", "k"), ("value", "v"))}
        o_w, o_b = sd.pop(prefix + "out_proj.weight"), sd.pop(prefix + "out_proj.bias")
    width = o_w.shape[0]
    flat = {}
    for name, (w, b) in qkv.items():
        flat[f"{out}{name}/kernel"] = w.T.reshape(width, heads, width // heads)
        flat[f"{out}{name}/bias"] = b.reshape(heads, width // heads)
    flat[f"{out}out/kernel"] = o_w.T.reshape(heads, width // heads, width)
    flat[f"{out}out/bias"] = o_b
    return flat


def _layer_norm(sd: dict, prefix: str, out: str) -> dict:
    return {out + "scale": sd.pop(prefix + "weight"), out + "bias": sd.pop(prefix + "bias")}


def _mlp(sd: dict, prefix: str, out: str) -> dict:
    return {f"{out}Dense_{i}/{k}": (sd.pop(f"{prefix}fc{i + 1}.weight").T if k == "kernel"
                                    else sd.pop(f"{prefix}fc{i + 1}.bias"))
            for i in (0, 1) for k in ("kernel", "bias")}


def _encoder(sd: dict, prefix: str, out: str, depth: int, heads: int) -> dict:
    flat = {}
    for i in range(depth):
        src, dst = f"{prefix}layers.{i}.", f"{out}encoderblock_{i}/"
        flat.update(_layer_norm(sd, src + "layer_norm1.", dst + "LayerNorm_0/"))
        flat.update(_layer_norm(sd, src + "layer_norm2.", dst + "LayerNorm_1/"))
        flat.update(_attention(sd, src + "self_attn.", dst + "MultiHeadDotProductAttention_0/",
                               heads))
        flat.update(_mlp(sd, src + "mlp.", dst + "MlpBlock_0/"))
    return flat


def hf_to_big_vision(state_dict: dict, config) -> dict[str, np.ndarray]:
    """HF SiglipModel state dict (numpy) -> big_vision flat names (per-layer blocks, no prefix).

    Raises ValueError if any HF weight is left unconverted (nothing may be dropped silently)."""
    sd = {k: np.asarray(v, np.float32) for k, v in state_dict.items()}
    v, t = config.vision_config, config.text_config
    flat = {"img/embedding/kernel": sd.pop("vision_model.embeddings.patch_embedding.weight")
            .transpose(2, 3, 1, 0),
            "img/embedding/bias": sd.pop("vision_model.embeddings.patch_embedding.bias"),
            "img/pos_embedding": sd.pop("vision_model.embeddings.position_embedding.weight")[None]}
    flat.update(_encoder(sd, "vision_model.encoder.", "img/Transformer/", v.num_hidden_layers,
                         v.num_attention_heads))
    flat.update(_layer_norm(sd, "vision_model.post_layernorm.", "img/Transformer/encoder_norm/"))
    flat["img/MAPHead_0/probe"] = sd.pop("vision_model.head.probe")
    flat.update(_attention(sd, "vision_model.head.attention.",
                           "img/MAPHead_0/MultiHeadDotProductAttention_0/",
                           v.num_attention_heads, packed=True))
    flat.update(_layer_norm(sd, "vision_model.head.layernorm.", "img/MAPHead_0/LayerNorm_0/"))
    flat.update(_mlp(sd, "vision_model.head.mlp.", "img/MAPHead_0/MlpBlock_0/"))
    flat["txt/Embed_0/embedding"] = sd.pop("text_model.embeddings.token_embedding.weight")
    flat["txt/pos_embedding"] = sd.pop("text_model.embeddings.position_embedding.weight")[None]
    flat.update(_encoder(sd, "text_model.encoder.", "txt/Encoder_0/", t.num_hidden_layers,
                         t.num_attention_heads))
    flat.update(_layer_norm(sd, "text_model.final_layer_norm.", "txt/Encoder_0/encoder_norm/"))
    flat["txt/head/kernel"] = sd.pop("text_model.head.weight").T
    flat["txt/head/bias"] = sd.pop("text_model.head.bias")
    flat["t"] = sd.pop("logit_scale").reshape(1)
    flat["b"] = sd.pop("logit_bias").reshape(1)
    sd = {k: x for k, x in sd.items() if not k.endswith("position_ids")}  # buffers, not weights
    if sd:
        raise ValueError(f"unconverted HF weights: {sorted(sd)}")
    return flat


def random_hf_model(args):
    import torch
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(args.seed)
    config = SiglipConfig(
        text_config=dict(vocab_size=args.vocab_size, hidden_size=48, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=args.seq_len, projection_size=64,
                         pad_token_id=1, eos_token_id=1, bos_token_id=None),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, image_size=args.image_size,
                           patch_size=args.patch_size))
    model = SiglipModel._from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))  # no exact zeros/ones to hide a layout mistake
        model.logit_scale.fill_(float(np.log(10.0)) + 0.1)
        model.logit_bias.fill_(-2.5)
    return model, config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--vocab-size", type=int, default=100)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--texts", type=int, default=5)
    args = parser.parse_args(argv)

    import jax
    import torch

    from tessera.models.siglip import checkpoint
    from tessera.models.siglip.inference import image_embeddings, text_embeddings
    from tessera.models.siglip import model as two_tower

    jax.config.update("jax_default_matmul_precision", "highest")  # float32 matmuls on GPU/TPU too
    hf, config = random_hf_model(args)
    flat = hf_to_big_vision({k: v.detach().numpy() for k, v in hf.state_dict().items()}, config)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/siglip_random.npz"
        np.savez(path, **{f"params/{k}": v for k, v in flat.items()})
        params, cfg = checkpoint.load_checkpoint(path)  # the loader real checkpoints go through

    rng = np.random.default_rng(args.seed)
    size = args.image_size
    images = rng.uniform(-1, 1, (args.images, size, size, 3)).astype(np.float32)
    tokens = rng.integers(0, args.vocab_size, (args.texts, args.seq_len)).astype(np.int32)
    tokens[:, -1] = 1  # sticky EOS, as the tokenizer pads
    with torch.no_grad():
        out = hf(input_ids=torch.from_numpy(tokens.astype(np.int64)),
                 pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)))
    ref_img, ref_txt = out.image_embeds.numpy(), out.text_embeds.numpy()
    ref_logits = out.logits_per_image.numpy()

    zimg = np.asarray(image_embeddings(params, images, cfg=cfg))
    ztxt = np.asarray(text_embeddings(params, tokens, cfg=cfg))
    logits = np.asarray(two_tower.logits(params, zimg, ztxt))
    scale = float(np.exp(params["t"][0]))
    diffs = {"image_embeddings": np.abs(zimg - ref_img).max(),
             "text_embeddings": np.abs(ztxt - ref_txt).max(),
             "logits/scale": np.abs(logits - ref_logits).max() / scale}
    print(f"SigLIP parity, float32 CPU, random weights (seed {args.seed}): image {size}px/"
          f"{args.patch_size}, {cfg.image.vit.depth}+{cfg.text.depth} layers, embed dim "
          f"{cfg.image.embed_dim}, logit scale {scale:.3f}, bias {float(params['b'][0]):.2f}; "
          f"transformers {__import__('transformers').__version__}, torch {torch.__version__}")
    for name, value in diffs.items():
        print(f"  max |diff| {name:17s} {value:.3e}")
    print(f"  logits range [{ref_logits.min():.3f}, {ref_logits.max():.3f}]")
    ok = all(value < TOLERANCE for value in diffs.values())
    print("PASS" if ok else f"FAIL (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
