"""The OWL-ViT family's tiny variant: a random few-hundred-kilobyte detector in the authors'
format (a scenic flax msgpack checkpoint) with a CLIP BPE file beside it in CLIP's own format,
both made on the spot; and the same model as a Hugging Face directory.
"""
from __future__ import annotations

from tessera import fileio
from tessera.models.owlvit import checkpoint
from tessera.models.owlvit.configs import OwlViTConfig, tiny_config
from tessera.models.owlvit.model import init_params
from tessera.models.owlvit.tokenizer import (clip_vocab, train_tiny_merges, write_clip_bpe,
                                             write_hf_files)
from tessera.models.paligemma.checkpoint import flatten

TINY_CHECKPOINT = "owlvit_tiny_32"  # no extension, like the released `clip_vit_b32_b0203fc`
TINY_BPE = "bpe_simple_vocab_tiny.txt.gz"


def _tiny(seed: int) -> tuple[OwlViTConfig, dict, list]:
    merges = train_tiny_merges()
    cfg = tiny_config(vocab_size=len(clip_vocab(merges)))
    return cfg, init_params(seed, cfg), merges


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny checkpoint and its BPE file under `directory`; returns the checkpoint's path."""
    cfg, params, merges = _tiny(seed)
    write_clip_bpe(fileio.join(directory, TINY_BPE), merges)
    return checkpoint.save_checkpoint(fileio.join(directory, TINY_CHECKPOINT), params)


def hf_settings(cfg: OwlViTConfig) -> tuple[dict, dict, int]:
    """(vision_config, text_config, projection_dim) of config.json for `cfg`."""
    vision = dict(hidden_size=cfg.vision_width, intermediate_size=4 * cfg.vision_width,
                  num_hidden_layers=cfg.vision_depth, num_attention_heads=cfg.vision_heads,
                  image_size=cfg.image_size, patch_size=cfg.patch_size)
    text = dict(hidden_size=cfg.text_width, intermediate_size=4 * cfg.text_width,
                num_hidden_layers=cfg.text_depth, num_attention_heads=cfg.text_heads,
                vocab_size=cfg.vocab_size, max_position_embeddings=cfg.seq_len)
    return vision, text, cfg.embed_dim


def write_tiny_hf(directory: str, seed: int = 0) -> str:
    """The same tiny model as an `OwlViTForObjectDetection` directory (config.json,
    model.safetensors, tokenizer.json, vocab.json, merges.txt); returns the directory."""
    from tessera.models.owlvit import hf
    cfg, params, merges = _tiny(seed)
    write_hf_files(directory, merges)
    return hf.write_hf_checkpoint(directory, flatten(params), *hf_settings(cfg), seed=seed)
