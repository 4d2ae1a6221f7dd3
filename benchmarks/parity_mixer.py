"""Architecture parity: Tessera's MLP-Mixer (`mixer:PATH`) vs timm's `MlpMixer`.

Random weights (every array perturbed) are written as a released Mixer `.npz` (`stem/...`,
per-layer `MixerBlock_{i}/...`, `pre_head_layer_norm`, `head`), loaded by Tessera's real loader
(`models.mixer.load`), and the same file's arrays are copied into timm's modules by name (every
tensor, strictly: timm ships its Mixer weights converted to PyTorch and has no npz reader for
them). Both run the same images in float32 on CPU; timm gets flax's tanh-GELU. Passes when
max |diff| / max |logit| < 1e-4 for every size.

  pip install -e '.[parity]'
  python benchmarks/parity_mixer.py [--seed 0] [--images 4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.timm_reference import (compare, conv, import_timm, linear, load_exact,  # noqa: E402
                                       tensor)

CASES = (("S/16", 224), ("S/32", 64), ("B/32", 64))  # published sizes, all blocks, 10 classes


def timm_state(npz: dict, cfg) -> dict:
    """The released file's arrays as timm `MlpMixer` state-dict entries."""
    state = {"stem.proj.weight": conv(npz["stem/kernel"]),
             "stem.proj.bias": tensor(npz["stem/bias"]),
             "norm.weight": tensor(npz["pre_head_layer_norm/scale"]),
             "norm.bias": tensor(npz["pre_head_layer_norm/bias"]),
             "head.weight": linear(npz["head/kernel"]), "head.bias": tensor(npz["head/bias"])}
    for i in range(cfg.num_blocks):
        src, dst = f"MixerBlock_{i}/", f"blocks.{i}."
        for ln, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_1", "norm2")):
            state[f"{dst}{norm}.weight"] = tensor(npz[f"{src}{ln}/scale"])
            state[f"{dst}{norm}.bias"] = tensor(npz[f"{src}{ln}/bias"])
        for mix, mlp in (("token_mixing", "mlp_tokens"), ("channel_mixing", "mlp_channels")):
            for r in (0, 1):
                state[f"{dst}{mlp}.fc{r + 1}.weight"] = linear(npz[f"{src}{mix}/Dense_{r}/kernel"])
                state[f"{dst}{mlp}.fc{r + 1}.bias"] = tensor(npz[f"{src}{mix}/Dense_{r}/bias"])
    return state


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)

    import jax
    import torch
    timm = import_timm()
    from timm.models.mlp_mixer import MlpMixer

    from tessera.models import mixer
    from tessera.models.mixer.configs import variant
    from tessera.models.mixer.tiny import write_tiny_checkpoint

    jax.config.update("jax_default_matmul_precision", "highest")
    print(f"MLP-Mixer parity vs timm {timm.__version__} (torch {torch.__version__}), float32 CPU, "
          f"random weights (seed {args.seed}), {args.images} images, 10 classes")
    ok = True
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for n, (name, size) in enumerate(CASES):
            cfg = variant(name, image_size=size, num_classes=10)
            path = f"{tmp}/mixer_{n}.npz"
            write_tiny_checkpoint(path, cfg, seed=args.seed + n)
            ours_model = mixer.load(path)
            assert ours_model.cfg == cfg, (ours_model.cfg, cfg)
            reference = MlpMixer(
                num_classes=cfg.num_classes, img_size=cfg.image_size, patch_size=cfg.patch_size,
                num_blocks=cfg.num_blocks, embed_dim=cfg.hidden_dim,
                mlp_ratio=(cfg.tokens_mlp_dim / cfg.hidden_dim,
                           cfg.channels_mlp_dim / cfg.hidden_dim),
                act_layer=timm.layers.get_act_layer("gelu_tanh")).eval()
            with np.load(path) as npz:
                load_exact(reference, timm_state(dict(npz), cfg))
            rng = np.random.default_rng(args.seed + n)
            images = rng.uniform(-1, 1, (args.images, size, size, 3)).astype(np.float32)
            ours = np.asarray(ours_model.forward(ours_model.params, images)[0])
            theirs = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
            ok &= compare(f"Mixer-{name} at {size} px ({cfg.num_blocks} blocks, "
                          f"{cfg.num_tokens} tokens) "
                          "[by name]", ours, theirs)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
