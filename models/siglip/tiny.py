"""The SigLIP family's tiny variant: a random few-kilobyte two-tower model in big_vision's npz
layout (`params/img/...`, `params/txt/...`, `params/t`, `params/b`, per-layer blocks, as the
published checkpoints are) and a SentencePiece tokenizer trained on the spot beside it.
"""
from __future__ import annotations

from tessera import fileio
from tessera.models.siglip import checkpoint
from tessera.models.siglip.configs import TwoTowerConfig, tiny_config
from tessera.models.siglip.model import init_params
from tessera.models.siglip.tokenizer import TextTokenizer, train_tiny_tokenizer

TINY_CHECKPOINT = "siglip_tiny_28.npz"


def write_tiny_checkpoint(path: str, cfg: TwoTowerConfig | None = None, *, seed: int = 0,
                          scanned: bool = False) -> dict:
    """Saves random params for `cfg` (default tiny) as a big_vision npz; returns the params."""
    params = init_params(seed, cfg or tiny_config())
    checkpoint.save_checkpoint(path, params, scanned=scanned)
    return params


def write_tiny(directory: str, seed: int = 0) -> str:
    """tokenizer.model + a 28 px checkpoint under `directory`; returns the checkpoint's path
    (`siglip:PATH` and `lit:PATH` load it)."""
    tokenizer = train_tiny_tokenizer(fileio.join(directory, "tokenizer.model"))
    vocab = TextTokenizer.from_file(tokenizer).vocab_size
    path = fileio.join(directory, TINY_CHECKPOINT)
    write_tiny_checkpoint(path, tiny_config(vocab_size=vocab), seed=seed)
    return path


def write_tiny_hf(directory: str, seed: int = 0) -> str:
    """The same tiny model as a Hugging Face SigLIP directory (config.json, model.safetensors,
    spiece.model), written through the table the HF reader uses; returns the directory."""
    from tessera.models.paligemma.checkpoint import flatten
    from tessera.models.siglip import hf
    tokenizer = train_tiny_tokenizer(fileio.join(directory, hf.TOKENIZER))
    cfg = tiny_config(vocab_size=TextTokenizer.from_file(tokenizer).vocab_size)
    flat = checkpoint.unstack_layers(flatten(init_params(seed, cfg)))
    vit, txt = cfg.image.vit, cfg.text
    vision = dict(hidden_size=vit.width, intermediate_size=vit.mlp_dim, num_hidden_layers=vit.depth,
                  num_attention_heads=vit.num_heads, image_size=vit.image_size,
                  patch_size=vit.patch_size)
    text = dict(hidden_size=txt.width, intermediate_size=txt.mlp_dim, num_hidden_layers=txt.depth,
                num_attention_heads=txt.num_heads, vocab_size=txt.vocab_size,
                max_position_embeddings=txt.seq_len, projection_size=txt.out_dim)
    return hf.write_hf_checkpoint(directory, flat, vision, text)
