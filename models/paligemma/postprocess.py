"""Turns PaliGemma's decoded text into labelled pixel boxes. Pure functions, no model state.

Detection/segmentation answers look like
  "<loc0256><loc0128><loc0768><loc0896> cat ; <loc0010><loc0020><loc0500><loc0600> dog"
  "<loc0256><loc0128><loc0768><loc0896><seg012><seg100>...<seg007> cat"
Four `<locNNNN>` tokens are y_min, x_min, y_max, x_max in 1024 bins of the (squashed) model input,
so a coordinate is NNNN / 1024 times the original image's height or width (the conversion in the
big_vision / Gemma PaliGemma notebooks). `<segNNN>` codes (a VQ mask) are kept verbatim.
"""
from __future__ import annotations

import dataclasses
import math
import re

from tessera.schemas.labels import Box

NUM_BINS = 1024
_OBJECT = re.compile(
    r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>"  # y_min x_min y_max x_max
    r"((?:<seg\d{3}>)*)"                                   # optional mask codes
    r"([^;<]*)")                                            # label, up to ';' or the next token
_SEG = re.compile(r"<seg(\d{3})>")
_LOC_GROUP = re.compile(r"(?:<loc\d{4}>){4}")


@dataclasses.dataclass(frozen=True)
class ParsedObject:
    box: Box
    seg_tokens: tuple[int, ...] = ()


def loc_to_pixels(bins: tuple[int, int, int, int], height: int, width: int):
    """(y_min, x_min, y_max, x_max) in 1024 bins -> pixels of an image of height x width."""
    y0, x0, y1, x1 = (min(max(int(b), 0), NUM_BINS - 1) for b in bins)
    return (y0 / NUM_BINS * height, x0 / NUM_BINS * width,
            y1 / NUM_BINS * height, x1 / NUM_BINS * width)


def parse_objects(text: str, height: int, width: int,
                  scores: list[float] | None = None) -> list[ParsedObject]:
    """Every 4-`<loc>` group in `text` as a labelled box in pixels (label may be empty).

    Args:
      text: decoded model output.
      height, width: size of the ORIGINAL image (boxes are relative to the whole image).
      scores: optional per-object scores, in order; used only if their count matches.
    """
    objects = []
    for m in _OBJECT.finditer(text):
        y0, x0, y1, x1 = loc_to_pixels(tuple(int(g) for g in m.groups()[:4]), height, width)
        label = m.group(6).strip()
        segs = tuple(int(s) for s in _SEG.findall(m.group(5)))
        objects.append(ParsedObject(Box(label, y0, x0, y1, x1), segs))
    if scores is not None and len(scores) == len(objects):
        objects = [dataclasses.replace(o, box=dataclasses.replace(o.box, score=float(s)))
                   for o, s in zip(objects, scores)]
    return objects


def box_scores(token_ids, logps, loc_ids: set[int], eos_id: int) -> list[float]:
    """Per-box confidence: geometric-mean probability of each run of 4 consecutive loc tokens.

    Walks the generated ids the way `parse_objects` walks the text (groups of four consecutive
    `<loc>` tokens), so the i-th score belongs to the i-th parsed box.
    """
    scores, run = [], []
    for t, lp in zip(token_ids, logps):
        t = int(t)
        if t == eos_id:
            break
        if t in loc_ids:
            run.append(float(lp))
            if len(run) == 4:
                scores.append(math.exp(sum(run) / 4))
                run = []
        else:
            run = []
    return scores


def task_of(prompt: str) -> str:
    """PaliGemma task word of a prompt: caption, ocr, answer, question, detect, segment, ..."""
    words = prompt.strip().split(maxsplit=1)
    return words[0].lower() if words else ""
