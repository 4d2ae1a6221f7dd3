"""V-MoE family: routing (Batch Prioritized Routing, k-major priority, the capacity ratio, the
MoE layer against a per-token formula), the authors' sharded checkpoint format, the tiny
checkpoint through `registry.load`, one-line errors, the handler's capacity knob and
`tessera label --model vmoe:PATH` end to end. Parity with the authors' JAX code is
`benchmarks/parity_vmoe.py` (needs a google-research/vmoe snapshot)."""
from __future__ import annotations

import math
import os

import jax
import msgpack
import numpy as np
import pytest

from tessera.models import registry
from tessera.models.image_classifier import TINY_CLASSES, ClassifierCheckpointError
from tessera.models.vit import checkpoint as vit_checkpoint
from tessera.models.vit import configs as vit_configs
from tessera.models.vmoe import checkpoint, configs, routing, sharded
from tessera.models.vmoe import model as vmoe_model
from tessera.models.vmoe.tiny import TINY_PREFIX, write_tiny_checkpoint
from tessera.schemas.labels import LabelRequest
from tests.fixtures.trees import same_arrays
from tests.fixtures.image_classifier import (check_bad_checkpoint_named, check_label_end_to_end,
                                            mutated_npz, np_mlp)

RNG = np.random.default_rng(0)
IMAGES = [RNG.integers(0, 255, (40, 30, 3), np.uint8), RNG.integers(0, 255, (32, 32, 3), np.uint8),
          RNG.integers(0, 255, (20, 50, 3), np.uint8)]


def _kept(dispatch) -> list[list[int]]:
    """Per expert, the tokens it processes, by slot."""
    d = np.asarray(dispatch)
    return [[int(np.flatnonzero(d[:, e, c])[0]) for c in range(d.shape[2]) if d[:, e, c].any()]
            for e in range(d.shape[1])]


def test_batch_priority_drops_the_least_confident_tokens_first():
    """Six tokens all want expert 0, which has 2 slots: by position the first two get them; with
    BPR the two with the largest routing weight do, whatever their position."""
    top = np.array([0.55, 0.9, 0.6, 0.95, 0.7, 0.51], np.float32)
    gates = np.stack([top, 1 - top], axis=1)
    vanilla, _ = routing.route(gates, 1, 2, batch_priority=False)
    bpr, combine = routing.route(gates, 1, 2, batch_priority=True)
    assert _kept(vanilla) == [[0, 1], []]
    assert _kept(bpr) == [[3, 1], []]  # slots filled in priority order: 0.95 then 0.9
    np.testing.assert_allclose(np.asarray(combine).sum(axis=(1, 2)), [0, 0.9, 0, 0.95, 0, 0])
    # with one more slot, the next most confident token (0.7 at position 4) is the one added
    assert _kept(routing.route(gates, 1, 3, batch_priority=True)[0]) == [[3, 1, 4], []]


def test_first_choices_are_served_before_second_choices():
    """k=2: token 2's first choice (expert 1) wins expert 1's only slot over tokens 0 and 1,
    whose second choice it is, although they come first (and have larger top weights)."""
    gates = np.array([[0.6, 0.3, 0.1], [0.6, 0.35, 0.05], [0.1, 0.5, 0.4]], np.float32)
    for bpr in (False, True):
        dispatch, _ = routing.route(gates, 2, 1, batch_priority=bpr)
        assert _kept(dispatch)[1] == [2]
        assert _kept(dispatch)[2] == [2]  # its second choice: no first choice wanted expert 2


def test_expert_capacity_follows_the_paper_or_the_authors_rounding():
    assert routing.expert_capacity(50, 8, 2, 1.05, "round", 0) == 13  # round(13.125)
    assert routing.expert_capacity(50, 8, 2, 1.05, "ceil", 4) == 16  # the authors' code: 14 -> 16
    assert routing.expert_capacity(197, 8, 2, 0.5, "round", 0) == 25  # round(24.625)
    with pytest.raises(ValueError, match="capacity ratio 0.01 gives experts no slot"):
        routing.expert_capacity(17, 4, 2, 0.01)


def test_with_ample_capacity_and_k1_the_layer_is_each_token_through_its_top_expert():
    """y_s = gate_s,e* x MLP_e*(x_s), e* the token's best expert, written out per token."""
    cfg = configs.tiny_config(num_selected_experts=1)
    p = jax.tree_util.tree_map(np.asarray, vmoe_model.init_params(3, cfg))
    moe = p["Encoder"]["encoderblock_1"]["Moe"]
    x = np.random.default_rng(1).standard_normal((2, 17, 32)).astype(np.float32)
    got = np.asarray(routing.moe_mlp(moe, x, k=1, capacity=17, batch_priority=True))
    logits = x @ moe["Router"]["dense"]["kernel"]
    gates = np.exp(logits - logits.max(-1, keepdims=True))
    gates /= gates.sum(-1, keepdims=True)
    expected = np.zeros_like(x)
    for g in range(2):
        for s in range(17):
            e = int(np.argmax(gates[g, s]))
            expert = jax.tree_util.tree_map(lambda a, e=e: a[e], moe["Mlp"])
            expected[g, s] = gates[g, s, e] * np_mlp(expert, x[g, s])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # a short capacity leaves some tokens at 0 (the block's residual passes them on)
    short = np.asarray(routing.moe_mlp(moe, x, k=1, capacity=2, batch_priority=True))
    dropped = np.all(short == 0, axis=-1)
    assert dropped.sum() >= 2 * (17 - 4 * 2)
    np.testing.assert_allclose(short[~dropped], expected[~dropped], rtol=1e-4, atol=1e-5)


def test_capacity_ratio_sets_how_many_tokens_are_processed():
    cfg = configs.tiny_config()
    params = vmoe_model.init_params(5, cfg)
    images = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    x = np.asarray(vmoe_model.encode(params, images, cfg))  # any tokens will do for the router
    router = params["Encoder"]["encoderblock_3"]["Moe"]["Router"]
    counts, logits = [], []
    for ratio in (0.25, 0.5, 1.0, 2.0, 4.0):
        c = configs.VMoEConfig(**{**cfg.__dict__, "capacity_ratio": ratio})
        counts.append(int(np.asarray(routing.processed_tokens(
            router, x, k=2, capacity=vmoe_model.capacity(c), batch_priority=True)).sum()))
        logits.append(np.asarray(vmoe_model.forward(params, images, c)[0]))
    assert counts == sorted(counts) and counts[0] < counts[2] < counts[-1]
    assert counts[0] <= 2 * 4 * vmoe_model.capacity(configs.VMoEConfig(
        **{**cfg.__dict__, "capacity_ratio": 0.25}))  # 2 groups x 4 experts x slots
    assert counts[-1] == 2 * 17 * 2  # every token reaches both its experts
    assert not np.allclose(logits[0], logits[-1], atol=1e-4)
    # enough capacity is enough: more changes nothing
    np.testing.assert_array_equal(logits[-1], np.asarray(vmoe_model.forward(
        params, images, configs.VMoEConfig(**{**cfg.__dict__, "capacity_ratio": 8.0}))[0]))


def test_descriptions_and_parameter_counts():
    b16 = configs.from_description("ViT-B/16, E=8, K=2, Every 2, 300 Epochs", num_classes=1000)
    assert (b16.width, b16.depth, b16.mlp_dim, b16.num_heads) == (768, 12, 3072, 12)
    assert b16.moe_layers == (1, 3, 5, 7, 9, 11) and b16.num_tokens == 197
    s32 = configs.from_description("ViT-S/32, E=8, K=2, Last 2")
    assert (s32.width, s32.depth, s32.moe_layers, s32.num_tokens) == (512, 8, (5, 7), 50)
    assert all(configs.from_description(d) for d, _, _ in configs.RELEASED.values())
    # = ViT-B/16 (the same backbone) + 7 more MLPs and a router in each of the 6 MoE blocks
    vit = sum(math.prod(s) for s in vit_checkpoint.param_shapes(
        vit_configs.variant("B/16", num_classes=1000, posemb_with_cls=True)).values())
    extra = 6 * (7 * (768 * 3072 + 3072 + 3072 * 768 + 768) + 768 * 8)
    assert sum(math.prod(s) for s in checkpoint.param_shapes(b16).values()) == vit + extra
    with pytest.raises(ValueError, match="unknown V-MoE description"):
        configs.from_description("ViT-X/16, E=8")


def test_write_tiny_round_trips_through_registry_load(tmp_path):
    spec = registry.write_tiny_spec("vmoe", str(tmp_path / "a"), seed=1)
    assert spec == f"vmoe:{tmp_path / 'a' / TINY_PREFIX}.index"
    assert sorted(os.listdir(tmp_path / "a")) == [
        "labels.txt", f"{TINY_PREFIX}.data-00000-of-00002", f"{TINY_PREFIX}.data-00001-of-00002",
        f"{TINY_PREFIX}.index"]
    with open(tmp_path / "a" / f"{TINY_PREFIX}.index", "rb") as f:  # the authors' index layout
        index = msgpack.unpackb(f.read())
    assert index["shard_count"] == 2 and index["version"] == sharded.VERSION
    moe = index["index"]["Encoder"]["encoderblock_1"]["Moe"]
    assert isinstance(moe["Mlp"]["Dense_0"]["kernel"], msgpack.ExtType)
    assert moe["Mlp"]["Dense_0"]["kernel"].code == 8  # vmoe's IndexInfo
    model = registry.load(spec)
    assert model.cfg == configs.tiny_config() and model.class_names == TINY_CLASSES
    expected = vmoe_model.init_params(1, model.cfg)
    assert same_arrays(model.params, expected)
    embeddings, scores = model.predict(IMAGES)
    assert embeddings.shape == (3, 32) and scores.shape == (3, 5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    for other in (str(tmp_path / "a"), str(tmp_path / "a" / TINY_PREFIX)):  # dir, prefix
        np.testing.assert_array_equal(registry.load(f"vmoe:{other}").predict(IMAGES)[1], scores)
    # each image is its own routing group: its scores do not depend on its batch
    np.testing.assert_allclose(model.predict(IMAGES[1:2])[1][0], scores[1], rtol=1e-5)
    npz = str(tmp_path / "b" / "v.npz")
    os.makedirs(tmp_path / "b")
    write_tiny_checkpoint(npz, seed=1)
    np.testing.assert_allclose(registry.load(f"vmoe:{npz}").predict(IMAGES)[1], scores,
                               rtol=1e-6)
    other = registry.load(registry.write_tiny_spec("vmoe", str(tmp_path / "c"), seed=2))
    assert not np.allclose(other.predict(IMAGES)[1], scores)


def _raw_leaves(prefix: str, count: int) -> dict[int, np.ndarray]:
    """Leaf number -> its values, flat, decoded from the data shards with msgpack alone."""
    pieces: dict[int, list] = {}
    for shard in range(count):
        with open(f"{prefix}.data-{shard:05d}-of-{count:05d}", "rb") as f:
            content = msgpack.unpackb(f.read())
        assert content.pop(sharded.CHUNKS_KEY) is True
        for leaf, chunks in content.items():
            for [array], where in chunks:  # one flat piece per slice here
                shape, dtype, buffer = msgpack.unpackb(array.data, raw=True)
                first = msgpack.unpackb(msgpack.unpackb(where.data)[0])  # axis 0's slice
                pieces.setdefault(int(leaf), []).append((first[0], np.frombuffer(buffer, dtype)))
    return {i: np.concatenate([a for _, a in sorted(p, key=lambda t: t[0])])
            for i, p in pieces.items()}


def test_data_shards_number_arrays_in_jax_flattening_order(tmp_path):
    """vmoe's reader finds leaf i of jax's flattening (sorted keys) in the data shards; a
    reader and writer that agreed on another order would pass every round trip and fail on
    released files."""
    from tessera.models.paligemma.checkpoint import flatten, unflatten
    flat = flatten(vmoe_model.init_params(4, configs.tiny_config()))
    params = unflatten({k: flat[k] for k in sorted(flat, reverse=True)})  # dicts not in order
    checkpoint.save_checkpoint(str(tmp_path / "ck"), params, num_shards=2, max_rows=16)
    raw = _raw_leaves(str(tmp_path / "ck"), 2)
    leaves = jax.tree_util.tree_leaves(params)
    assert sorted(raw) == list(range(len(leaves)))
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(raw[i], np.asarray(leaf).ravel())


def test_sharded_files_of_any_slicing_read_the_same(tmp_path):
    flat = {"a/b": np.arange(24, dtype=np.float32).reshape(6, 4), "a/c": np.float32(3.5),
            "z": np.ones((3, 2, 2), np.float32)}
    for shards, rows in ((1, None), (3, 1), (2, 4)):
        prefix = str(tmp_path / f"ck{shards}")
        sharded.write(prefix, flat, num_shards=shards, max_rows=rows)
        back = sharded.read(prefix)
        assert back.keys() == flat.keys()
        assert all(np.array_equal(back[k], flat[k]) for k in flat)
    os.remove(str(tmp_path / "ck3.data-00001-of-00003"))
    with pytest.raises(sharded.ShardedCheckpointError, match="ck3.data-00001-of-00003: cannot"):
        sharded.read(str(tmp_path / "ck3"))


def _npz(tmp_path, mutate) -> str:
    return mutated_npz(tmp_path, write_tiny_checkpoint, mutate)


MOE = "Encoder/encoderblock_1/Moe/"


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.pop("head/bias"), "missing head/bias"),
    (lambda f: f.update({MOE + "Mlp/Dense_1/bias": np.zeros((3, 32), np.float32)}),
     "wrong shape Encoder/encoderblock_1/Moe/Mlp/Dense_1/bias (3, 32) != expected (4, 32)"),
    (lambda f: f.update({"Encoder/encoderblock_3/Moe/Router/dense/bias":
                         np.zeros(4, np.float32)}),
     "unexpected Encoder/encoderblock_3/Moe/Router/dense/bias"),
    (lambda f: f.pop(MOE + "Router/dense/kernel"),
     "missing Encoder/encoderblock_1/Moe/Router/dense/kernel"),
    (lambda f: [f.pop(k) for k in list(f) if "/Moe/" in k],
     "no Encoder/encoderblock_*/Moe arrays: a dense ViT, not a V-MoE"),
    (lambda f: f.update({"Encoder/posembed_input/pos_embedding": np.zeros((1, 16, 32),
                                                                          np.float32)}),
     "pos_embedding has 16 positions, not a square grid + cls"),
])
def test_a_bad_array_is_named_in_a_one_line_error(tmp_path, mutate, message):
    path = _npz(tmp_path, mutate)
    check_bad_checkpoint_named(f"vmoe:{path}", path, message)


def test_missing_files_fail_on_the_driver(tmp_path):
    with pytest.raises(ValueError, match="expected a V-MoE checkpoint"):
        registry.check_files(f"vmoe:{tmp_path}")
    spec = registry.write_tiny_spec("vmoe", str(tmp_path))
    registry.check_files(spec)
    os.remove(str(tmp_path / f"{TINY_PREFIX}.data-00001-of-00002"))
    with pytest.raises(ClassifierCheckpointError, match="data-00001-of-00002"):
        registry.load(spec)


def test_handler_passes_the_capacity_ratio(tmp_path):
    spec = registry.write_tiny_spec("vmoe", str(tmp_path))
    default = registry.make_handler(spec, workload="label", batch_size=2, top_k=2,
                                    embeddings=True)
    low = registry.make_handler(spec, workload="label", batch_size=2, top_k=2,
                                capacity_ratio=0.3)
    default_model, low_model = default.load_model(), low.load_model()
    assert default_model.cfg.capacity_ratio == 1.05 and low_model.cfg.capacity_ratio == 0.3
    requests = [LabelRequest("a", IMAGES[0]), LabelRequest("bad", np.zeros((5, 5), np.uint8)),
                LabelRequest("b", IMAGES[1])]
    results = default.run_inference(requests, default_model)
    assert [r.key for r in results] == ["a", "bad", "b"] and results[1].error
    embedding, scores = default_model.predict([IMAGES[0]])
    assert results[0].text == TINY_CLASSES[int(np.argmax(scores[0]))]
    np.testing.assert_allclose(results[0].embedding, embedding[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(low_model.predict(IMAGES)[1], default_model.predict(IMAGES)[1])


def test_label_flags_for_vmoe():
    from tessera.config import ConfigError
    from tessera.transforms.label.config import LabelConfig
    base = dict(inputs=("x/*.png",), output="o", run_id="t")
    config = LabelConfig(model="vmoe:ck/m.index", capacity_ratio=0.5, embeddings=True,
                         classes="a,b", **base)
    assert config.capacity_ratio == 0.5 and config.class_names() == ("a", "b")
    with pytest.raises(ConfigError, match="--capacity-ratio: only vmoe models take it"):
        LabelConfig(model="vit:m.npz", capacity_ratio=0.5, **base)
    with pytest.raises(ConfigError, match="--capacity-ratio must be > 0"):
        LabelConfig(model="vmoe:m", capacity_ratio=0.0, **base)


def test_tessera_label_with_vmoe_end_to_end(tmp_path):
    check_label_end_to_end(registry.write_tiny_spec("vmoe", str(tmp_path / "vmoe")), tmp_path,
                           weights_suffix=".data-00000-of-00002")


def test_capacity_ratio_flag_reaches_the_handler(tmp_path, monkeypatch):
    """`--capacity-ratio` parses into the config (and the manifest's copy of it) and `build`
    hands it to the handler's loader."""
    from apache_beam.testing.test_pipeline import TestPipeline

    from tessera.pipelines import common, label
    spec = registry.write_tiny_spec("vmoe", str(tmp_path / "m"))
    made = []
    monkeypatch.setattr(label, "make_handler",
                        lambda *a, **kw: made.append(registry.make_handler(*a, **kw)) or made[-1])
    argv = ["--input", str(tmp_path / "*.png"), "--output", str(tmp_path / "o"), "--model", spec,
            "--capacity-ratio", "0.5"]
    config, _ = common.parse_config(label.PROG, label.__doc__, label.LabelConfig, argv)
    assert config.capacity_ratio == 0.5
    label.build(TestPipeline(), config)
    assert made[0].load_kwargs == {"capacity_ratio": 0.5}
    assert made[0].load_model().cfg.capacity_ratio == 0.5
