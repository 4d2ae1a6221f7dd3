"""Architecture parity: Tessera's V-MoE (`vmoe:PATH`) vs the authors' own JAX code
(google-research/vmoe `vmoe/nn/vit_moe.py` `VisionTransformerMoe`, with `vit_jax` from
google-research/vision_transformer). There is no Hugging Face V-MoE.

Random weights (every array perturbed) are written by Tessera as the authors' sharded checkpoint
(PREFIX.index + two data shards, arrays cut in slices). The authors' `restore_checkpoint`
(`vmoe/checkpoints/partitioned.py`) reads it back, which checks the writer against the real
format, and must give Tessera's reader's arrays bit for bit. Then both models run the same images
in float32 on CPU: the authors' with `deterministic=True` (no router noise), the einsum
dispatcher in float32 (their configs dispatch in bfloat16 to save bandwidth) and
`group_size` = tokens per routing group, across capacity ratios from 0.5 (many tokens dropped) to
4, with and without Batch Prioritized Routing, k = 1 and 2, with the paper's capacity rounding
(Tessera's default) and the authors' code's (ceil, then a multiple of 4). Passes when
max |diff| / max |logit| < 1e-4 for every case and the routing decisions (dispatch masks of
`get_top_experts_per_item_dispatcher` vs `routing.route`) agree exactly.

  git clone https://github.com/google-research/vmoe /tmp/vmoe_repo
  git clone https://github.com/google-research/vision_transformer /tmp/vit_repo  # vit_jax
  PYTHONPATH=/tmp/vmoe_repo:/tmp/vit_repo python benchmarks/parity_vmoe.py [--seed 0] [--images 4]

The authors' code needs only flax, jax, absl and (for the checkpoint reader) tensorflow, all in
Tessera's environment; nothing is installed.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

TOLERANCE = 1e-4


def _import_authors():
    try:
        from vmoe import moe  # noqa: F401
        from vmoe.checkpoints import partitioned
        from vmoe.nn import vit_moe
    except ImportError as err:
        sys.exit(f"cannot import the authors' vmoe / vit_jax ({err}); put a folder holding "
                 "google-research/vmoe's vmoe/ and vision_transformer's vit_jax/ on PYTHONPATH")
    return moe, partitioned, vit_moe


def authors_model(vit_moe, cfg):
    """`VisionTransformerMoe` configured as `cfg` (the authors' config keys)."""
    dispatcher = dict(name="einsum", bfloat16=False, capacity_factor=cfg.capacity_ratio,
                      batch_priority=cfg.batch_priority,
                      capacity_ceil_or_round=cfg.capacity_rounding,
                      capacity_multiple_of=cfg.capacity_multiple_of or None)
    encoder = dict(num_layers=cfg.depth, mlp_dim=cfg.mlp_dim, num_heads=cfg.num_heads,
                   dropout_rate=0.0, attention_dropout_rate=0.0,
                   moe=dict(num_experts=cfg.num_experts, layers=cfg.moe_layers,
                            group_size=cfg.group_size, dropout_rate=0.0,
                            router=dict(num_selected_experts=cfg.num_selected_experts,
                                        noise_std=1.0, dispatcher=dispatcher)))
    return vit_moe.VisionTransformerMoe(
        num_classes=cfg.num_classes, patch_size=(cfg.patch_size, cfg.patch_size),
        hidden_size=cfg.width, encoder=encoder,
        classifier="token" if cfg.pool == "tok" else "gap",
        representation_size=cfg.representation_size or None, deterministic=True)


def check_routing(moe, seed: int) -> bool:
    """Dispatch masks of the authors' top-experts-per-item routing vs `routing.route`, on random
    gates with short and ample capacity, with and without BPR, k = 1..3."""
    import jax
    from tessera.models.vmoe import routing
    rng = np.random.default_rng(seed)
    ok, cases = True, 0
    for k in (1, 2, 3):
        for capacity in (1, 3, 8, 40):
            for bpr in (False, True):
                gates = jax.nn.softmax(rng.standard_normal((40, 8)).astype(np.float32) * 2)
                theirs = moe.get_top_experts_per_item_dispatcher(
                    gates, name="einsum", num_selected_experts=k, batch_priority=bpr,
                    capacity=capacity)
                dispatch, combine = routing.route(gates, k, capacity, bpr)
                ok &= bool(np.array_equal(np.asarray(theirs.dispatch_weights), dispatch))
                ok &= bool(np.allclose(np.asarray(theirs.combine_weights), combine, atol=0))
                cases += 1
    print(f"  routing decisions, {cases} cases (k 1-3, capacity 1-40, BPR on/off) "
          f"{'identical' if ok else 'DIFFER'}")
    return ok


def cases():
    from tessera.models.vmoe.configs import from_description, tiny_config
    s32 = from_description("ViT-S/32, E=8, K=2, Last 2", num_classes=10,
                           representation_size=512)
    for ratio in (0.5, 1.05, 4.0):
        for bpr in (True, False):
            yield "V-MoE-S/32 Last 2 224px", dataclasses.replace(
                s32, capacity_ratio=ratio, batch_priority=bpr)
    b16 = from_description("ViT-B/16, E=8, K=1, Every 2", image_size=64, num_classes=10)
    yield "V-MoE-B/16 Every 2 K=1 64px, 2 img/group, ceil/4", dataclasses.replace(
        b16, capacity_ratio=0.75, images_per_group=2, capacity_rounding="ceil",
        capacity_multiple_of=4)
    yield "tiny gap pool, 4 experts", tiny_config(pool="gap", capacity_ratio=0.6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)

    import jax
    from absl import logging
    logging.set_verbosity(logging.ERROR)  # their "actual capacity_factor is ..." notes
    moe, partitioned, vit_moe = _import_authors()
    from tessera.models import vmoe
    from tessera.models.paligemma.checkpoint import flatten
    from tessera.models.vmoe import model as vmoe_model
    from tessera.models.vmoe import sharded
    from tessera.models.vmoe.tiny import write_tiny_checkpoint

    jax.config.update("jax_default_matmul_precision", "highest")
    print(f"V-MoE parity vs google-research/vmoe (jax {jax.__version__}), float32 CPU, random "
          f"weights (seed {args.seed}), {args.images} images")
    ok = check_routing(moe, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, cfg) in enumerate(cases()):
            prefix = f"{tmp}/vmoe_{n}"
            write_tiny_checkpoint(prefix, cfg, seed=args.seed + n, num_shards=2, max_rows=7)
            restored = partitioned.restore_checkpoint(prefix, None)
            theirs_flat = {k: np.asarray(v) for k, v in flatten(restored).items()}
            ours_flat = sharded.read(prefix)
            same = (theirs_flat.keys() == ours_flat.keys() and
                    all(np.array_equal(theirs_flat[k], ours_flat[k]) for k in ours_flat))
            ok &= same
            routing = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                       if f.name in vmoe.ROUTING_OPTIONS}
            ours_model = vmoe.load(prefix + ".index", **routing)
            assert ours_model.cfg == cfg, (ours_model.cfg, cfg)
            rng = np.random.default_rng(args.seed + n)
            size = cfg.image_size
            images = rng.uniform(-1, 1, (args.images, size, size, 3)).astype(np.float32)
            ours = np.asarray(ours_model.forward(ours_model.params, images)[0])
            reference = authors_model(vit_moe, cfg)
            theirs = np.asarray(jax.jit(reference.apply)({"params": restored}, images)[0])
            diff = float(np.abs(ours - theirs).max())
            scale = float(np.abs(theirs).max())
            good = diff / scale < TOLERANCE
            ok &= good
            bpr = "on " if cfg.batch_priority else "off"
            print(f"  {name:44s} C={cfg.capacity_ratio:<4} BPR={bpr} "
                  f"cap={vmoe_model.capacity(cfg):<3} ckpt {'same' if same else 'DIFF'}  "
                  f"max|diff| {diff:.2e}  max|logit| {scale:6.3f}  ratio {diff / scale:.2e}  "
                  f"{'ok' if good else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
