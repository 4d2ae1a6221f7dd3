"""The SCAN seq2seq model: tiny variant shapes, a learning step, and a save/load round trip."""
import jax
import jax.numpy as jnp
import numpy as np

from tessera.models import seq2seq


def _batch(cfg, src_vocab, tgt_vocab):
    pairs = [("jump twice", "I_JUMP I_JUMP"), ("walk left", "I_TURN_LEFT I_WALK")]
    src = np.stack([src_vocab.encode(s, cfg.max_src_len) for s, _ in pairs])
    tgt = np.stack([tgt_vocab.encode(t, cfg.max_tgt_len, bos=True) for _, t in pairs])
    return jnp.asarray(src), jnp.asarray(tgt)


def test_tiny_model_shapes_learning_and_round_trip(tmp_path):
    src_vocab = seq2seq.Vocab.from_texts(["jump twice", "walk left"])
    tgt_vocab = seq2seq.Vocab.from_texts(["I_JUMP I_TURN_LEFT I_WALK"])
    assert tgt_vocab.decode(tgt_vocab.encode("I_WALK I_JUMP", 6, bos=True)[1:]) == "I_WALK I_JUMP"
    cfg = seq2seq.Config(len(src_vocab), len(tgt_vocab), **seq2seq.TINY_CONFIG)
    cfg = seq2seq.Config(**{**cfg.__dict__, "max_src_len": 4, "max_tgt_len": 6})
    params = seq2seq.init_params(cfg)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
    assert 10_000 < n_params < 100_000
    src, tgt = _batch(cfg, src_vocab, tgt_vocab)
    logits = seq2seq.Model(cfg).apply({"params": params}, src, tgt[:, :-1])
    assert logits.shape == (2, cfg.max_tgt_len - 1, len(tgt_vocab))
    loss0 = seq2seq.loss_fn(params, cfg, src, tgt, jax.random.PRNGKey(0))
    grad = jax.grad(seq2seq.loss_fn)(params, cfg, src, tgt, jax.random.PRNGKey(0))
    stepped = jax.tree_util.tree_map(lambda p, g: p - 0.05 * g, params, grad)
    assert seq2seq.loss_fn(stepped, cfg, src, tgt, jax.random.PRNGKey(0)) < loss0

    path = str(tmp_path / "s2s.msgpack")
    seq2seq.save(path, params, cfg, src_vocab, tgt_vocab)
    model = seq2seq.load(path)
    out = np.asarray(model.apply_fn(model.params, src))
    assert out.shape == (2, cfg.max_tgt_len - 1)
    np.testing.assert_array_equal(out, np.asarray(seq2seq.greedy_decode(params, cfg, src)))
