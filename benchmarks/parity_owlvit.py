"""Architecture parity: Tessera's JAX OWL-ViT vs Hugging Face `OwlViTForObjectDetection`.

Builds a small random `OwlViTConfig` in PyTorch (real structure: CLIP towers, merged class
token, class and box heads; every weight perturbed, so no zero bias or unit LayerNorm hides a
transposed kernel) and saves it with `save_pretrained` (config.json + model.safetensors). Tessera
loads that directory through its Hugging Face reader (`models.owlvit.hf`), and the scenic flax
checkpoint written from it (msgpack, `params/backbone/clip/...`, per-layer `resblocks_N`)
through its scenic reader; both run on the same images and token ids as HF in float32 on CPU.
Prints max |diff| of the class logits divided by the largest |logit|, and of the boxes (cxcywh
in [0, 1]). Passes when all are < 1e-4.

HF's port differs from the authors' model in two places (exact vs tanh GELU in the box head,
LayerNorm eps 1e-5 vs 1e-6 after merging the class token); a scenic checkpoint runs with the
authors' settings, so its row is also printed with HF's settings, which is what checks the
layout mapping; the authors'-settings row shows the size of that genuine difference.
`--float64` runs both sides in float64, to show what float32 rounding leaves (boxes then agree
to ~1e-15; the logits keep ~1e-5 absolute because HF L2-normalises the text embeddings before the
class head divides by ||q|| + 1e-6, which scenic applies to the raw ones).

The tokenizer is checked too: Tessera's, built from a CLIP-format BPE file
(`bpe_simple_vocab_16e6.txt.gz` layout, the tiny variant's merges), against transformers'
`CLIPTokenizer` reading the same vocabulary as vocab.json + merges.txt, on a few queries.

  pip install -e '.[parity]'   # torch==2.13.0 (CPU) and transformers; not needed by the tests
  python benchmarks/parity_owlvit.py [--seed 0] [--image-size 96 --patch-size 16]
"""
from __future__ import annotations

import argparse
import dataclasses
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
    from transformers import OwlViTConfig, OwlViTForObjectDetection

    config = OwlViTConfig(
        text_config=dict(vocab_size=args.vocab_size, hidden_size=64, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16),
        vision_config=dict(hidden_size=96, intermediate_size=384, num_hidden_layers=2,
                           num_attention_heads=4, image_size=args.image_size,
                           patch_size=args.patch_size),
        projection_dim=64)
    model = perturbed_hf_model(OwlViTForObjectDetection, config, args.seed)
    with torch.no_grad():
        for name, p in model.box_head.named_parameters():
            # redrawn at 1/sqrt(fan-in): its pre-sigmoid outputs are then O(1), as a trained
            # head's are; HF's default init gives |x| ~ 1e3, where float32 rounding alone
            # moves a box by ~1e-4
            if name.endswith("weight"):
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    return model


def tokens(args, rng) -> np.ndarray:
    """[texts, 16]: SOT, random ids, EOT (the highest id), padding 0, as the tokenizer writes."""
    sot, eot = args.vocab_size - 2, args.vocab_size - 1
    out = np.zeros((args.texts, 16), np.int64)
    for row in range(args.texts):
        ids = rng.integers(1, sot, rng.integers(1, 12))
        out[row, :len(ids) + 2] = [sot, *ids, eot]
    return out


def tokenizer_parity() -> tuple[int, int]:
    """(queries tokenised identically, queries) vs transformers' CLIPTokenizer, OWL-ViT padding."""
    from transformers import CLIPTokenizer

    from tessera.models.owlvit import tokenizer as clip_bpe
    texts = ["a car", "Swimming  POOL", "the roof's tiles, 42 cars", "solar-panels on a house " * 3,
             "café", "A RED\ttruck"]
    with tempfile.TemporaryDirectory() as tmp:
        merges = clip_bpe.train_tiny_merges()
        clip_bpe.write_hf_files(tmp, merges)
        Path(tmp, "tokenizer.json").unlink()  # transformers builds its own from vocab + merges
        bpe_file = clip_bpe.write_clip_bpe(f"{tmp}/bpe.txt.gz", merges)
        ours = clip_bpe.ClipTokenizer.from_file(bpe_file)
        theirs = CLIPTokenizer.from_pretrained(tmp, pad_token="!")  # OWL-ViT pads with "!" = 0
        ref = theirs(texts, padding="max_length", max_length=16, truncation=True)["input_ids"]
    return int((ours.tokenize(texts, 16) == np.array(ref)).all(axis=1).sum()), len(texts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--vocab-size", type=int, default=200)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--texts", type=int, default=4)
    parser.add_argument("--float64", action="store_true", help="both sides in float64")
    args = parser.parse_args(argv)

    import jax
    import torch
    jax.config.update("jax_enable_x64", args.float64)
    dtype = np.float64 if args.float64 else np.float32

    from tessera.models.owlvit import checkpoint, hf, model
    from tessera.models.paligemma.checkpoint import unflatten

    jax.config.update("jax_default_matmul_precision", "highest")  # float32 matmuls on GPU/TPU too
    hf_model = random_hf_model(args).to(torch.float64 if args.float64 else torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(f"{tmp}/hf", safe_serialization=True)
        loaded = {"safetensors": hf.load_params(f"{tmp}/hf", dtype)}  # the real HF reader
        flat, _ = hf.read_hf_flat(f"{tmp}/hf")
        checkpoint.save_checkpoint(f"{tmp}/owlvit_random", unflatten(flat))
        params, cfg = checkpoint.load_checkpoint(f"{tmp}/owlvit_random", dtype)  # scenic reader
    hf_settings = dict(exact_gelu=True, merged_norm_eps=1e-5)
    loaded["scenic msgpack, HF's GELU/eps"] = (params, dataclasses.replace(cfg, **hf_settings))
    loaded["scenic msgpack, authors' GELU/eps"] = (params, cfg)

    rng = np.random.default_rng(args.seed)
    size = args.image_size
    images = rng.standard_normal((args.images, size, size, 3)).astype(dtype)
    ids = tokens(args, rng)
    with torch.no_grad():
        out = hf_model(input_ids=torch.from_numpy(np.tile(ids, (args.images, 1))),
                       attention_mask=torch.from_numpy(np.tile(ids > 0, (args.images, 1))).long(),
                       pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)))
    ref_logits, ref_boxes = out.logits.numpy(), out.pred_boxes.numpy()
    scale = float(np.abs(ref_logits).max())

    ok = True
    print(f"OWL-ViT parity, {np.dtype(dtype).name} CPU, random weights (seed {args.seed}): "
          f"image {size}px/"
          f"{args.patch_size} ({(size // args.patch_size) ** 2} boxes), 2+2 layers, {args.texts} "
          f"queries, max |logit| {scale:.3f}; transformers {__import__('transformers').__version__}"
          f", torch {torch.__version__}")
    for fmt, (params, cfg) in loaded.items():
        queries = model.text_embeddings(params, ids.astype(np.int32), cfg)
        logits, boxes = (np.asarray(a) for a in model.detect(params, images, queries, cfg))
        diffs = {"logits/max|logit|": np.abs(logits - ref_logits).max() / scale,
                 "boxes": np.abs(boxes - ref_boxes).max()}
        gated = "authors'" not in fmt
        print(f"  {fmt}:" + "".join(f"  max |diff| {k} {v:.3e}" for k, v in diffs.items())
              + ("" if gated else "  (not gated: a real architecture difference)"))
        ok = ok and (not gated or all(v < TOLERANCE for v in diffs.values()))
    same, total = tokenizer_parity()
    print(f"  tokenizer: {same}/{total} queries give the same ids as transformers' CLIPTokenizer")
    ok = ok and same == total
    print("PASS" if ok else f"FAIL (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
