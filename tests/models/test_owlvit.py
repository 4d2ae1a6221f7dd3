"""OWL-ViT family: tiny and published sizes, the heads' formulas, scenic's flax checkpoint and a
Hugging Face directory through one loader (one-line errors naming a bad tensor), the CLIP
tokenizer in its three file formats, the handler, and `tessera label --model owlvit` end to end.
Parity with Hugging Face's OwlViTForObjectDetection is `benchmarks/parity_owlvit.py` (torch)."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from flax import serialization

from tessera.models import owlvit, registry
from tessera.models.owlvit import checkpoint, configs, hf, inference, model, tiny, tokenizer
from tessera.models.owlvit.checkpoint import OwlViTCheckpointError
from tessera.models.paligemma.checkpoint import flatten
from tessera.pipelines import label
from tessera.schemas.labels import Box, LabelRequest
from tests.fixtures.hf_dirs import assert_same_flat, edited_copy
from tests.fixtures.trees import leaves, same_arrays
from tests.fixtures.image_classifier import (LOCAL, SIZES, dead_letters, label_rows,
                                            lose_rows_and_resume, write_corpus)

QUERIES = ("car", "roof", "pool")


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory) -> str:
    return registry.write_tiny_spec("owlvit", str(tmp_path_factory.mktemp("owlvit")))


def test_tiny_shapes_parameter_count_and_golden_outputs():
    cfg = configs.tiny_config(vocab_size=600)
    params = model.init_params(0, cfg)
    assert sum(x.size for x in leaves(params)) == 65_278
    assert {k: v.shape for k, v in flatten(params).items()} == checkpoint.param_shapes(cfg)
    images = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    tokens = np.zeros((3, 16), np.int32)
    tokens[:, :4] = [[598, 5, 9, 599], [598, 7, 599, 0], [598, 300, 12, 599]]
    queries = model.text_embeddings(params, tokens, cfg)
    logits, boxes = model.detect(params, images, queries, cfg)
    assert queries.shape == (3, 24) and logits.shape == (2, 16, 3) and boxes.shape == (2, 16, 4)
    # golden values, recorded once the model matched HF's OwlViTForObjectDetection (benchmark)
    np.testing.assert_allclose(queries[0, :4], [0.666017, 1.239666, -0.563047, -1.672507],
                               atol=2e-5)
    np.testing.assert_allclose(logits[0, :2], [[0.277414, 0.636401, 0.283466],
                                               [2.356887, 2.295481, 2.634781]], atol=1e-4)
    np.testing.assert_allclose(boxes[1, 5], [0.486756, 0.601536, 0.319667, 0.30598], atol=2e-5)


# OwlViTForObjectDetection's parameter counts (transformers, the published configs) less the two
# tensors detection never uses and scenic's checkpoints lack: visual_projection and logit_scale
@pytest.mark.parametrize("name, hf_count, unused", [
    ("B/32", 153_231_879, 512 * 768 + 1), ("B/16", 152_789_511, 512 * 768 + 1),
    ("L/14", 433_888_519, 768 * 1024 + 1)])
def test_published_sizes_have_the_published_parameter_counts(name, hf_count, unused):
    cfg = configs.VARIANTS[name]
    assert sum(int(np.prod(s)) for s in checkpoint.param_shapes(cfg).values()) == hf_count - unused
    assert cfg.grid == {"B/32": 24, "B/16": 48, "L/14": 60}[name]


def test_box_bias_puts_each_token_on_its_grid_corner_with_the_patch_size():
    one = np.log(1.0001) - np.log(1e-4)  # logit(1) with scenic's eps; float32 below, as in scenic
    np.testing.assert_allclose(model.box_bias(2), [[0, 0, 0, 0], [one, 0, 0, 0], [0, one, 0, 0],
                                                   [one, one, 0, 0]], atol=2e-4)
    params = {"obj_box_head": {f"Dense_{i}": {"kernel": np.zeros((4, 4), np.float32),
                                              "bias": np.zeros(4, np.float32)} for i in range(3)}}
    cfg = configs.OwlViTConfig(2, 4, 4, 1, 1, 4, 1, 1)  # a 2x2 grid
    out = np.asarray(model.boxes(params, np.zeros((1, 4, 4), np.float32), cfg))
    # the last token: its corner (1, 1) as the centre, the patch (1/2) as the size
    np.testing.assert_allclose(out[0, 3], [1.0, 1.0, 0.5, 0.5], atol=1e-4)


def test_class_logits_are_shifted_and_scaled_cosines():
    rng = np.random.default_rng(1)
    head = {n: {"kernel": rng.standard_normal((3, d)).astype(np.float32),
                "bias": rng.standard_normal(d).astype(np.float32)}
            for n, d in (("Dense_0", 2), ("logit_shift", 1), ("logit_scale", 1))}
    features, queries = rng.standard_normal((1, 4, 3)), rng.standard_normal((5, 2))
    got = np.asarray(model.class_logits({"class_head": head}, features, queries))
    emb = features @ head["Dense_0"]["kernel"] + head["Dense_0"]["bias"]
    cos = (emb / np.linalg.norm(emb, axis=-1, keepdims=True)) @ (
        queries / np.linalg.norm(queries, axis=-1, keepdims=True)).T
    shift = features @ head["logit_shift"]["kernel"] + head["logit_shift"]["bias"]
    raw = features @ head["logit_scale"]["kernel"] + head["logit_scale"]["bias"]
    scale = np.where(raw > 0, raw, np.exp(raw) - 1) + 1  # elu + 1
    np.testing.assert_allclose(got, (cos + shift) * scale, rtol=1e-4, atol=1e-5)


def test_text_tower_is_causal_ignores_padding_and_pools_at_eot():
    cfg = configs.tiny_config(vocab_size=600)
    params = model.init_params(2, cfg)
    base = np.zeros((1, 16), np.int32)
    base[0, :4] = [598, 5, 9, 599]
    variants = base.repeat(3, 0)
    variants[1, 6] = 40  # after EOT: padding nobody attends to (EOT is the highest id)
    variants[2, 2] = 11  # before EOT: changes the query
    out = np.asarray(model.text_embeddings(params, variants, cfg))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-5)
    assert not np.allclose(out[2], out[0], atol=1e-3)


def test_to_boxes_keeps_the_best_query_per_token_above_the_threshold():
    logits = np.array([[3.0, -1.0], [-3.0, -2.5], [0.0, 2.0], [4.0, 0.0], [5.0, 5.5]])
    boxes = np.array([[0.5, 0.25, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.4, 0.4],
                      [0.75, 0.9, 0.2, 0.1], [0.5, 0.5, 0.1, 0.1]])
    # a 40 (h) x 20 (w) image: padded to a 40 px square; token 3 lies in the grey padding
    got = inference.to_boxes(logits, boxes, ("car", "roof"), 40, 20, min_score=0.5, max_boxes=3)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert [(b.label, round(b.score, 6)) for b in got] == [
        ("roof", round(sig(5.5), 6)), ("car", round(sig(3.0), 6)), ("roof", round(sig(2.0), 6))]
    assert got[1] == Box("car", 0.0, 10.0, 20.0, 20.0, got[1].score)  # x clipped to the width
    assert got[2] == pytest.approx(Box("roof", 0.0, 0.0, 12.0, 12.0, got[2].score))
    assert inference.to_boxes(logits, boxes, ("car", "roof"), 40, 20, 0.99, 10) == (got[0],)


def test_preprocess_pads_to_a_grey_square_at_the_bottom_right():
    image = np.full((20, 40, 3), 255, np.uint8)
    out = inference.preprocess(image, 16)
    white = (1.0 - inference.IMAGE_MEAN) / inference.IMAGE_STD
    grey = (0.5 - inference.IMAGE_MEAN) / inference.IMAGE_STD
    np.testing.assert_allclose(out[:8], np.broadcast_to(white, (8, 16, 3)), rtol=1e-5)
    np.testing.assert_allclose(out[8:], np.broadcast_to(grey, (8, 16, 3)), rtol=1e-5)


def test_write_tiny_round_trips_through_registry_load(tmp_path):
    spec = registry.write_tiny_spec("owlvit", str(tmp_path / "a"), seed=1)
    path = spec.split(":", 1)[1]
    assert spec == f"owlvit:{tmp_path / 'a' / tiny.TINY_CHECKPOINT}"
    state = serialization.msgpack_restore(open(path, "rb").read())  # scenic's train state
    assert set(state) == {"params", "global_step"}
    assert {"backbone", "class_head", "obj_box_head"} == set(state["params"])
    assert "resblocks_1" in state["params"]["backbone"]["clip"]["visual"]["transformer"]
    detector = registry.load(spec)
    assert owlvit.resolve(str(tmp_path / "a")) == (path, str(tmp_path / "a" / tiny.TINY_BPE))
    assert detector.cfg == configs.tiny_config(vocab_size=detector.tokenizer.vocab_size)
    expected = model.init_params(1, detector.cfg)
    assert same_arrays(detector.params, expected)
    other = registry.load(registry.write_tiny_spec("owlvit", str(tmp_path / "b"), seed=2))
    image = [np.full((30, 20, 3), 90, np.uint8)]
    assert not np.allclose(other.predict(image, other.embed_queries(QUERIES))[0],
                           detector.predict(image, detector.embed_queries(QUERIES))[0])


def _rewrite(path: str, edit) -> str:
    state = serialization.msgpack_restore(open(path, "rb").read())
    flat = flatten(state["params"])
    edit(flat)
    from tessera.models.paligemma.checkpoint import unflatten
    out = path + "_edited"
    open(out, "wb").write(serialization.msgpack_serialize({"params": unflatten(flat)}))
    return out


def test_old_scenic_names_and_pre_optax_states_load_the_same(tmp_path):
    path = owlvit.write_tiny(str(tmp_path))
    reference, _ = checkpoint.load_checkpoint(path)

    def old_names(flat):
        for key in [k for k in flat if "/resblocks_" in k]:
            new = key.replace("/resblocks_", "/resblocks.").replace("/ln_1/", "/ln_2/")
            flat[new.replace("/ln_0/", "/ln_1/")] = flat.pop(key)
    old = _rewrite(path, old_names)
    params, _ = checkpoint.load_checkpoint(old)
    assert same_arrays(params, reference)
    state = serialization.msgpack_restore(open(path, "rb").read())
    state = {"optimizer": {"target": state["params"], "state": {"step": np.zeros(())}}}
    open(tmp_path / "old_optim", "wb").write(serialization.msgpack_serialize(state))
    params, _ = checkpoint.load_checkpoint(str(tmp_path / "old_optim"))
    assert same_arrays(params, reference)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.pop("obj_box_head/Dense_1/kernel"), "missing obj_box_head/Dense_1/kernel"),
    (lambda f: f.update({"class_head/Dense_0/kernel": np.zeros((32, 5), np.float32)}),
     "wrong shape class_head/Dense_0/kernel (32, 5) != expected (32, 24)"),
    (lambda f: f.update({"backbone/extra/kernel": np.zeros(3, np.float32)}),
     "unexpected backbone/extra/kernel"),
    (lambda f: f.update({"backbone/merged_class_token/scale": np.ones(32, np.int32)}),
     "not float backbone/merged_class_token/scale (int32)"),
    (lambda f: f.pop("backbone/clip/visual/conv1/kernel"),
     "missing backbone/clip/visual/conv1/kernel"),
    (lambda f: f.pop("backbone/clip/text/transformer/resblocks_0/ln_1/bias"),
     "missing backbone/clip/text/transformer/resblocks_0/ln_1/bias"),
])
def test_a_bad_array_is_named_in_a_one_line_error(tmp_path, edit, message):
    path = _rewrite(owlvit.write_tiny(str(tmp_path)), edit)
    with pytest.raises(OwlViTCheckpointError) as err:
        registry.load(f"owlvit:{path},{tmp_path / tiny.TINY_BPE}")
    assert message in str(err.value) and path in str(err.value) and "\n" not in str(err.value)


def test_a_file_that_is_no_flax_checkpoint_is_refused(tmp_path):
    (tmp_path / "ckpt").write_bytes(b"\x00not msgpack at all")
    with pytest.raises(OwlViTCheckpointError, match="not a flax"):
        checkpoint.load_checkpoint(str(tmp_path / "ckpt"))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return (owlvit.write_tiny(str(tmp_path_factory.mktemp("scenic")), seed=3),
            tiny.write_tiny_hf(str(tmp_path_factory.mktemp("hf")), seed=3))


def test_hf_directory_loads_to_the_same_tree_as_the_scenic_checkpoint(both):
    (a, cfg_a), (b, cfg_b) = checkpoint.load_checkpoint(both[0]), hf.load_params(both[1])
    assert (cfg_a.exact_gelu, cfg_a.merged_norm_eps) == (False, 1e-6)  # the authors' model
    assert (cfg_b.exact_gelu, cfg_b.merged_norm_eps) == (True, 1e-5)  # HF's port
    assert cfg_b == configs.OwlViTConfig(**{**cfg_a.__dict__, "exact_gelu": True,
                                            "merged_norm_eps": 1e-5})
    assert_same_flat(flatten(a), flatten(b))
    assert owlvit.resolve(both[1]) == (both[1], os.path.join(both[1], "tokenizer.json"))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("box_head.dense2.weight"), "missing box_head.dense2.weight"),
    (lambda t: t.pop("owlvit.visual_projection.weight"), "missing owlvit.visual_projection.weight"),
    (lambda t: t.update({"class_head.dense0.weight": np.zeros((5, 32), np.float32)}),
     "wrong shape class_head.dense0.weight (5, 32) != expected (24, 32)"),
    (lambda t: t.update({"owlvit.vision_model.extra.weight": np.zeros(3, np.float32)}),
     "unexpected owlvit.vision_model.extra.weight"),
])
def test_a_wrong_hf_tensor_is_named_in_hf_terms(both, tmp_path, edit, message):
    path = edited_copy(both[1], tmp_path, edit, files=("config.json", "tokenizer.json"))
    with pytest.raises(OwlViTCheckpointError) as err:
        registry.load(f"owlvit:{path}")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_three_tokenizer_formats_give_the_same_ids(both):
    scenic_dir, hf_dir = (os.path.dirname(both[0]), both[1])
    bpe = tokenizer.ClipTokenizer.from_file(os.path.join(scenic_dir, tiny.TINY_BPE))
    json_tok = tokenizer.ClipTokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    merges = tokenizer.ClipTokenizer.from_file(os.path.join(hf_dir, "merges.txt"))
    texts = ["a red car", "Swimming   POOL!", "the roof of the house " * 4]
    ids = bpe.tokenize(texts, 16)
    np.testing.assert_array_equal(bpe.tokenize(["A RED  Car"], 16), ids[:1])  # CLIP lower-cases
    for other in (json_tok, merges, pickle.loads(pickle.dumps(bpe))):
        np.testing.assert_array_equal(other.tokenize(texts, 16), ids)
    assert bpe.eot == bpe.vocab_size - 1 and bpe.sot == bpe.vocab_size - 2  # EOT: highest id
    assert list(ids[0, :1]) == [bpe.sot] and ids[0].argmax() == list(ids[0]).index(bpe.eot)
    assert set(ids[0, list(ids[0]).index(bpe.eot) + 1:]) == {0}  # padded with 0
    assert ids[2, -1] == bpe.eot and bpe.eot not in ids[2, :-1]  # cut, EOT kept last
    assert ids[0, 1] == bpe.tokenizer.token_to_id("a</w>")  # CLIP's end-of-word symbols


def test_handler_labels_boxes_of_the_queries(tiny_spec):
    handler = registry.make_handler(tiny_spec, workload="label", batch_size=2, queries=QUERIES,
                                    prompt="a photo of a {}", min_score=0.2, max_boxes=4)
    loaded = handler.load_model()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, shape, np.uint8) for shape in ((40, 30, 3), (32, 32, 3))]
    requests = [LabelRequest("a", images[0]), LabelRequest("bad", np.zeros((5, 5), np.uint8)),
                LabelRequest("b", images[1])]
    results = list(handler.run_inference(requests, loaded))
    assert [r.key for r in results] == ["a", "bad", "b"]
    assert results[1].error.startswith("invalid_image:") and results[1].boxes == ()
    detector = loaded.detector  # independent recomputation through the model functions
    queries = detector.embed_queries([f"a photo of a {q}" for q in QUERIES])
    for result, image in zip((results[0], results[2]), images):
        batch = inference.preprocess(image, detector.resolution)[None]
        logits, boxes = (np.asarray(x)[0] for x in model.detect(detector.params, batch, queries,
                                                               detector.cfg))
        expected = inference.to_boxes(logits, boxes, QUERIES, *image.shape[:2], 0.2, 4)
        assert [b.label for b in result.boxes] == [b.label for b in expected]
        np.testing.assert_allclose([b.score for b in result.boxes], [b.score for b in expected],
                                   rtol=1e-4)
        assert 0 < len(result.boxes) <= 4 and all(b.score >= 0.2 for b in result.boxes)
        assert result.text == result.boxes[0].label and result.error is None


def test_tessera_label_with_owlvit_end_to_end(tiny_spec, tmp_path):
    """Boxes equal the loaded model's; the corrupt file is dead-lettered; `--resume` after
    losing two rows labels exactly those two again."""
    images = write_corpus(tmp_path / "in")
    out = str(tmp_path / "out")
    argv = ["--input", str(tmp_path / "in" / "*.png"), "--output", out, "--model", tiny_spec,
            "--queries", " car ; roof;pool ", "--min-score", "0.5", "--max-boxes", "5",
            "--batch-size", "2", *LOCAL]
    assert label.main(argv) == 0
    rows = label_rows(out)
    assert sorted(os.path.basename(k) for k in rows) == sorted(SIZES)
    assert dead_letters(out) == [("garbage.png", "undecodable")]
    detector = registry.load(tiny_spec)
    queries = detector.embed_queries(QUERIES)
    with_boxes = 0
    for key, row in rows.items():
        image = images[os.path.basename(key)]
        expected = detector.detect([image], QUERIES, queries, min_score=0.5, max_boxes=5)[0]
        assert [b["label"] for b in row["boxes"]] == [b.label for b in expected]
        for got, want in zip(row["boxes"], expected):
            corners = ("y_min", "x_min", "y_max", "x_max", "score")
            np.testing.assert_allclose([got[k] for k in corners],
                                       [want.y_min, want.x_min, want.y_max, want.x_max, want.score],
                                       rtol=1e-4, atol=1e-3)
            assert 0 <= got["x_min"] < got["x_max"] <= image.shape[1]
            assert 0 <= got["y_min"] < got["y_max"] <= image.shape[0]
        assert row["text"] == (row["boxes"][0]["label"] if row["boxes"] else "")
        assert row["error"] is None and row["model"] == tiny_spec and row["embedding"] is None
        with_boxes += bool(row["boxes"])
    assert 2 <= with_boxes < len(rows)  # boxes come out, and the threshold binds
    manifest = json.loads(open(os.path.join(out, "manifest.json")).read())
    assert manifest["counts"]["labelled"] == 5 and manifest["counts"]["errors"] == 1
    assert manifest["model"]["path"] == tiny_spec.split(":", 1)[1]
    assert manifest["config"]["queries"] == " car ; roof;pool "
    assert manifest["config"]["max_boxes"] == 5

    resumed, lost = lose_rows_and_resume(out, argv)  # a killed run that lost two written rows
    assert sorted(resumed) == sorted(rows)
    for key in lost:
        assert resumed[key]["boxes"] == rows[key]["boxes"]
    assert dead_letters(out) == [("garbage.png", "undecodable")]


@pytest.mark.parametrize("argv, message", [
    (["--model", "owlvit:m"], "--model owlvit: give --queries, the texts to detect"),
    (["--model", "ocr", "--queries", "car"], "--queries: only owlvit models take it"),
    (["--model", "owlvit:m", "--queries", "car ; roof ; car"], "given twice: car"),
    (["--model", "owlvit:m", "--queries", " ; "], "--queries: no class names given"),
    (["--model", "owlvit:m", "--queries", "car", "--prompt", "photo"], "query templates with {}"),
    (["--model", "owlvit:m", "--queries", "car", "--min-score", "1.5"], "--min-score"),
    (["--model", "owlvit:m", "--queries", "car", "--classes", "a"], "--classes: only siglip"),
])
def test_owlvit_flags_are_one_line_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    base = ["--input", str(tmp_path / "*.png"), "--output", str(tmp_path / "o")]
    assert label.main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
