"""Architecture parity: Tessera's JAX ViT classifier vs Hugging Face `ViTForImageClassification`.

Builds a small random `ViTConfig` in PyTorch (every weight perturbed, so no zero bias or unit
LayerNorm hides a transposed kernel), saves it with `save_pretrained` (config.json +
model.safetensors) and loads that directory through Tessera's real reader (`models.vit.hf`, exact
GELU, eps 1e-12 from config.json). Both run the same images in float32 on CPU; prints
max |diff| / max |logit| of the logits and passes when it is < 1e-4.

  pip install -e '.[parity]'   # torch==2.13.0 (CPU) and transformers; not needed by the tests
  python benchmarks/parity_vit_hf.py [--seed 0] [--hidden-act gelu]
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
    from timm_reference import import_timm, perturbed_hf_model
    import_timm()  # loads torchvision as transformers will, also on a CPU-only torch build
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, image_size=args.image_size,
                       patch_size=args.patch_size, num_labels=5, hidden_act=args.hidden_act)
    return perturbed_hf_model(ViTForImageClassification, config, args.seed, args.perturb)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--hidden-act", default="gelu",
                        choices=("gelu", "gelu_new", "gelu_pytorch_tanh"))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--perturb", type=float, default=0.2,
                        help="std of the noise added to every weight (large: GELU and eps show)")
    args = parser.parse_args(argv)

    import jax
    import torch

    from tessera.models.vit import hf
    from tessera.models.vit.model import forward

    jax.config.update("jax_default_matmul_precision", "highest")  # float32 matmuls on GPU/TPU too
    hf_model = random_hf_model(args)
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(f"{tmp}/hf", safe_serialization=True)
        params, cfg, _ = hf.load_params(f"{tmp}/hf")  # the real HF reader

    rng = np.random.default_rng(args.seed)
    size = args.image_size
    images = rng.uniform(-1, 1, (args.images, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        ref = hf_model(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).logits.numpy()
    logits = np.asarray(forward(params, images, cfg=cfg)[0])
    figure = float(np.abs(logits - ref).max() / np.abs(ref).max())
    print(f"ViT parity (HF safetensors), float32 CPU, random weights (seed {args.seed}): image "
          f"{size}px/{args.patch_size}, {cfg.depth} layers, width {cfg.width}, {cfg.num_heads} "
          f"heads, {cfg.num_classes} classes, hidden_act {args.hidden_act} "
          f"(gelu_approximate={cfg.gelu_approximate}, eps {cfg.layer_norm_eps:g}); transformers "
          f"{__import__('transformers').__version__}, torch {torch.__version__}")
    print(f"  max |diff| / max |logit| {figure:.3e}   (logits range [{ref.min():.3f}, "
          f"{ref.max():.3f}])")
    ok = figure < TOLERANCE
    print("PASS" if ok else f"FAIL (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
