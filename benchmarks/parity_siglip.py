"""Architecture parity: Tessera's JAX SigLIP two-tower model vs Hugging Face `SiglipModel`.

Builds a small random `SiglipConfig` in PyTorch (every weight perturbed, so no zero bias or unit
LayerNorm hides a transposed kernel) and saves it with `save_pretrained` (config.json +
model.safetensors). Tessera loads that directory through its real Hugging Face reader
(`models.siglip.hf`), and also the big_vision npz written from it (`params/img/...`,
`params/txt/...`, `params/t`, `params/b`, per-layer blocks) through the npz reader; both run on the
same images and token ids as HF in float32 on CPU. Prints max |diff| of the image embeddings, the
text embeddings and the zero-shot logits (divided by the logit scale exp(t)) for each checkpoint
format. Passes when all are < 1e-4.

  pip install -e '.[parity]'   # torch==2.13.0 (CPU) and transformers; not needed by the tests
  python benchmarks/parity_siglip.py [--seed 0] [--image-size 64 --patch-size 16]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

TOLERANCE = 1e-4


def random_hf_model(args):
    import torch
    from timm_reference import import_timm, perturbed_hf_model
    import_timm()  # loads torchvision as transformers will, also on a CPU-only torch build
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(
        text_config=dict(vocab_size=args.vocab_size, hidden_size=48, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=args.seq_len, projection_size=64,
                         pad_token_id=1, eos_token_id=1, bos_token_id=None),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, image_size=args.image_size,
                           patch_size=args.patch_size))
    model = perturbed_hf_model(SiglipModel, config, args.seed)
    with torch.no_grad():
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

    from tessera.models.siglip import checkpoint, hf
    from tessera.models.siglip.inference import image_embeddings, text_embeddings
    from tessera.models.siglip import model as two_tower

    jax.config.update("jax_default_matmul_precision", "highest")  # float32 matmuls on GPU/TPU too
    hf_model, _ = random_hf_model(args)
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(f"{tmp}/hf", safe_serialization=True)
        loaded = {"safetensors": hf.load_params(f"{tmp}/hf")}  # the real HF reader
        flat = hf.read_hf_flat(f"{tmp}/hf")
        np.savez(f"{tmp}/siglip_random.npz", **{f"params/{k}": v for k, v in flat.items()})
        loaded["big_vision npz"] = checkpoint.load_checkpoint(f"{tmp}/siglip_random.npz")

    rng = np.random.default_rng(args.seed)
    size = args.image_size
    images = rng.uniform(-1, 1, (args.images, size, size, 3)).astype(np.float32)
    tokens = rng.integers(0, args.vocab_size, (args.texts, args.seq_len)).astype(np.int32)
    tokens[:, -1] = 1  # sticky EOS, as the tokenizer pads
    with torch.no_grad():
        out = hf_model(input_ids=torch.from_numpy(tokens.astype(np.int64)),
                 pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)))
    ref_img, ref_txt = out.image_embeds.numpy(), out.text_embeds.numpy()
    ref_logits = out.logits_per_image.numpy()

    ok = True
    for fmt, (params, cfg) in loaded.items():
        zimg = np.asarray(image_embeddings(params, images, cfg=cfg))
        ztxt = np.asarray(text_embeddings(params, tokens, cfg=cfg))
        logits = np.asarray(two_tower.logits(params, zimg, ztxt))
        scale = float(np.exp(params["t"][0]))
        diffs = {"image_embeddings": np.abs(zimg - ref_img).max(),
                 "text_embeddings": np.abs(ztxt - ref_txt).max(),
                 "logits/scale": np.abs(logits - ref_logits).max() / scale}
        print(f"SigLIP parity ({fmt}), float32 CPU, random weights (seed {args.seed}): image "
              f"{size}px/{args.patch_size}, {cfg.image.vit.depth}+{cfg.text.depth} layers, embed "
              f"dim {cfg.image.embed_dim}, logit scale {scale:.3f}, bias {float(params['b'][0]):.2f}; "
              f"transformers {__import__('transformers').__version__}, torch {torch.__version__}")
        for name, value in diffs.items():
            print(f"  max |diff| {name:17s} {value:.3e}")
        ok = ok and all(value < TOLERANCE for value in diffs.values())
    print(f"  logits range [{ref_logits.min():.3f}, {ref_logits.max():.3f}]")
    print("PASS" if ok else f"FAIL (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
