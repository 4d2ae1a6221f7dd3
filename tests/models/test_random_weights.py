"""The random real-size checkpoints of models/random_weights.py (GPU throughput runs):
a full PaliGemma vocabulary that decodes every id, the So400m config's size, and tiny files
that the real loaders read back."""
import numpy as np

from tessera.models.paligemma import checkpoint as pg_checkpoint
from tessera.models.paligemma import configs as pg_configs
from tessera.models import random_weights as random_checkpoints
from tessera.models.paligemma.tokenizer import PaliGemmaTokenizer
from tessera.models.siglip import checkpoint as sl_checkpoint
from tessera.models.siglip import configs as sl_configs
from tessera.models.siglip.tokenizer import TextTokenizer


def test_full_paligemma_vocabulary_decodes_every_id(tmp_path):
    tok = PaliGemmaTokenizer.from_file(
        random_checkpoints.paligemma_tokenizer(str(tmp_path / "tokenizer.model")))
    sp = tok.sp
    assert tok.vocab_size == pg_configs.PALIGEMMA_VOCAB == 257_152
    assert (sp.pad_id(), tok.eos_id, tok.bos_id, sp.unk_id()) == (0, 1, 2, 3)  # Gemma's
    assert sp.piece_to_id("<loc0000>") == 256_000 and sp.piece_to_id("<seg127>") == 257_151
    assert len(tok.loc_ids) == 1024
    prefix = tok.encode_prefix("caption en")
    assert prefix[0] == 2 and sp.unk_id() not in prefix
    pieces = [sp.id_to_piece(i) for i in range(tok.vocab_size)]
    assert len(set(pieces)) == tok.vocab_size
    texts = [sp.decode([i]) for i in range(tok.vocab_size)]  # raises on an id it cannot decode
    assert texts[256_000] == "<loc0000>" and texts[5] != ""


def test_siglip_vocabulary_fills_the_text_tower(tmp_path):
    tok = TextTokenizer.from_file(
        random_checkpoints.siglip_tokenizer(str(tmp_path / "tokenizer.model")))
    assert tok.vocab_size == sl_configs.so400m_224().text.vocab_size == 32_000
    assert tok.eos_id == 1
    ids = tok.tokenize(["a photo of a cat"], 16)[0]
    assert ids.max() < 32_000 and 2 not in ids  # no <unk>
    assert len({tok.sp.id_to_piece(i) for i in range(tok.vocab_size)}) == tok.vocab_size


def test_so400m_224_sizes_match_the_published_model():
    shapes = sl_checkpoint.param_shapes(sl_configs.so400m_224())
    count = {tower: sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(tower))
             for tower in ("img/", "txt/")}
    # timm vit_so400m_patch14_siglip_224 (the image tower with its MAP head): 427.7M parameters
    assert round(count["img/"] / 1e6, 1) == 427.7
    assert shapes["img/pos_embedding"] == (1, 256, 1152)
    assert shapes["txt/pos_embedding"] == (1, 16, 1152)  # big_vision: 16 tokens at 224 px
    assert shapes["txt/head/kernel"] == (1152, 1152) and "img/head/kernel" not in shapes
    assert round((count["img/"] + count["txt/"]) / 1e6) == 877


def test_tiny_random_checkpoints_load_through_the_real_readers(tmp_path):
    pg = random_checkpoints.write("paligemma-tiny", str(tmp_path / "pg"))
    params, cfg = pg_checkpoint.load_checkpoint(pg["npz"])
    assert cfg == random_checkpoints.FAMILIES["paligemma-tiny"][1]()
    assert params["llm"]["embedder"]["input_embedding"].dtype == np.float32  # bf16 file, cast
    sl = random_checkpoints.write("siglip-tiny", str(tmp_path / "sl"))
    _, sl_cfg = sl_checkpoint.load_checkpoint(sl["npz"])
    assert sl_cfg == random_checkpoints.FAMILIES["siglip-tiny"][1]()
    flat = random_checkpoints.random_flat({"w": (8, 4), "big/kernel": (64, 32)}, big=1000)
    assert {a.dtype.name for a in flat.values()} == {"bfloat16"}  # numpy and JAX paths
    assert 0.1 < float(np.asarray(flat["big/kernel"], np.float32).std()) < 0.25  # 64 ** -0.5


def test_real_size_layouts_read_back_as_their_configs():
    """The 3B and So400m arrays (zero-stride stand-ins: no memory) are recognised by the readers
    as exactly the configs they were drawn for (Gemma 2 decoder, MAP head, text head, bias)."""
    def stand_ins(shapes):
        return {k: np.broadcast_to(np.zeros((), np.float16), s) for k, s in shapes.items()}
    pg_cfg = random_checkpoints.FAMILIES["paligemma2-3b-224"][1]()
    flat = pg_checkpoint.canonicalize(stand_ins(pg_checkpoint.param_shapes(pg_cfg)))
    assert pg_checkpoint.infer_config(flat) == pg_cfg == pg_configs.paligemma2("3b", 224)
    sl_cfg = sl_configs.so400m_224()
    flat = stand_ins(sl_checkpoint.param_shapes(sl_cfg))  # scanned: restacking would copy
    assert sl_checkpoint.infer_config(flat) == sl_cfg
    sl_checkpoint.check_complete(flat, sl_cfg)
