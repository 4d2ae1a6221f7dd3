"""Architecture parity: Tessera's JAX PaliGemma vs Hugging Face `PaliGemmaForConditionalGeneration`.

Builds a small random PaliGemma in PyTorch (every weight perturbed; grouped-query attention with
one KV head, as the 3B model has), saves it with `save_pretrained` (config.json +
model.safetensors) and loads that directory through Tessera's Hugging Face reader
(`models.paligemma.hf`). Both run the same image and tokens in float32 on CPU, once with the
whole text as prefix (full attention) and once with a causal suffix (the prefix-LM mask), and the
script prints max |logit diff| relative to the logit scale and whether the greedy (argmax) token
agrees at every position. Passes when the relative difference is < 1e-4 and every token agrees.

  pip install -e '.[parity]'
  python benchmarks/parity_paligemma.py [--seed 0]
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


def random_hf_model(seed: int, vocab: int, image_size: int, patch: int, kv_heads: int,
                    gemma2: bool = False):
    import torch
    from timm_reference import import_timm
    import_timm()  # torchvision as transformers loads it, also on a CPU-only torch build
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    torch.manual_seed(seed)
    config = PaliGemmaConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=image_size, patch_size=patch,
                           projection_dim=48, vision_use_head=False),
        text_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads, head_dim=16,
                         vocab_size=vocab, hidden_activation="gelu_pytorch_tanh",
                         # small caps and window, so that they change the result here
                         **(dict(model_type="gemma2", query_pre_attn_scalar=24,
                                 attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                                 sliding_window=6) if gemma2 else {})),
        image_token_index=vocab - 1, projection_dim=48, hidden_size=48)
    model = PaliGemmaForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--patch-size", type=int, default=14)
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--suffix", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=1, help="4: plain multi-head (qkv_einsum)")
    parser.add_argument("--gemma2", action="store_true", help="PaliGemma 2: a Gemma 2 decoder")
    args = parser.parse_args(argv)

    import jax
    import torch
    from tessera.models.paligemma import hf, model

    jax.config.update("jax_default_matmul_precision", "highest")
    hf_model, config = random_hf_model(args.seed, args.vocab, args.image_size, args.patch_size,
                                         args.kv_heads, args.gemma2)
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        params, cfg = hf.load_params(tmp)  # the reader real HF checkpoints go through

    rng = np.random.default_rng(args.seed)
    image = rng.uniform(-1, 1, (1, args.image_size, args.image_size, 3)).astype(np.float32)
    tokens = rng.integers(0, args.vocab - 1, (1, args.tokens)).astype(np.int32)
    n_img = (args.image_size // args.patch_size) ** 2
    ok = True
    for name, suffix in (("all prefix", 0), (f"causal suffix of {args.suffix}", args.suffix)):
        mask_ar = np.zeros_like(tokens)
        if suffix:
            mask_ar[:, -suffix:] = 1
        ours = np.asarray(model.text_logits(params, image, tokens, np.ones_like(tokens, bool),
                                            mask_ar, cfg=cfg))
        ids = np.concatenate([np.full((1, n_img), config.image_token_index), tokens], axis=1)
        types = np.concatenate([np.zeros((1, n_img), np.int64), mask_ar.astype(np.int64)], axis=1)
        with torch.no_grad():
            ref = hf_model(input_ids=torch.from_numpy(ids.astype(np.int64)),
                           pixel_values=torch.from_numpy(image.transpose(0, 3, 1, 2)),
                           token_type_ids=torch.from_numpy(types)).logits.numpy()[:, n_img:]
        rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
        same = bool((ours.argmax(-1) == ref.argmax(-1)).all())
        print(f"PaliGemma{' 2' if args.gemma2 else ''} parity ({name}), float32 CPU, random weights (seed {args.seed}): "
              f"{cfg.vision.depth}+{cfg.text.depth} layers, {cfg.text.num_heads} heads / "
              f"{cfg.text.num_kv_heads} KV head: max |diff| / max |logit| {rel:.3e}, "
              f"greedy tokens {'identical' if same else 'DIFFER'}")
        ok = ok and rel < TOLERANCE and same
    print("PASS" if ok else f"FAIL (tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
