"""OCR quality: character error rate of `--model ocr` on generated, rendered text lines.

Each line is a known string (seeded from its index, so the set is the same on every machine),
rendered with one of several TrueType fonts at one of several sizes, with light Gaussian noise,
a slight blur and a small random offset. CER = total edit distance / total reference characters,
after collapsing runs of whitespace. Target: CER <= 5%.

    python benchmarks/ocr_quality.py [--lines 120] [--out out/bench/ocr_quality.json]

Fonts: the DejaVu family that matplotlib ships (always present with Tessera's dependencies), plus
Debian's `fonts-dejavu-core` / `fonts-liberation` files when installed. The OCR weights are the
PP-OCRv4 models inside the rapidocr_onnxruntime wheel; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FONT_NAMES = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf",
              "DejaVuSerif-Italic.ttf", "LiberationSans-Regular.ttf", "LiberationSerif-Regular.ttf")
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
SIZES = (18, 24, 32)
WORDS = ("invoice", "total", "order", "shipping", "address", "street", "north", "river", "garden",
         "market", "station", "window", "paper", "number", "date", "amount", "green", "table",
         "Berlin", "Paris", "Tokyo", "Lagos", "Quebec", "Monday", "March", "Report", "Delta",
         "Tessera", "label", "image", "vision", "pipeline", "batch", "model", "corpus", "field")


def find_fonts() -> list[str]:
    """Paths of the available benchmark fonts, one per font name, first directory wins."""
    import matplotlib
    dirs = (os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf"),
            *FONT_DIRS)
    found = {}
    for name in FONT_NAMES:
        for d in dirs:
            if os.path.exists(os.path.join(d, name)):
                found[name] = os.path.join(d, name)
                break
    return list(found.values())


def _rng(index: int, salt: str = "ocr_quality") -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(f"{salt}:{index}".encode()).digest()[:8], "big")
    return np.random.default_rng(seed)


def make_text(index: int) -> str:
    """Known string for line `index`: 3-5 words plus a number or a price."""
    rng = _rng(index, "text")
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(3, 6)))]
    number = (f"{int(rng.integers(1, 9999))}" if rng.random() < 0.5
              else f"{int(rng.integers(1, 999))}.{int(rng.integers(0, 100)):02d}")
    words.insert(int(rng.integers(0, len(words) + 1)), number)
    return " ".join(words)


def render_line(text: str, font_path: str, size: int, *, noise_sigma: float = 0.0,
                blur: float = 0.0, seed_index: int = 0, pad: int = 12) -> np.ndarray:
    """Black text on white, HxWx3 uint8, with optional light noise and blur."""
    rng = _rng(seed_index, "render")
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    dx, dy = int(rng.integers(0, 6)), int(rng.integers(0, 4))
    width, height = right - left + 2 * pad + dx, bottom - top + 2 * pad + dy
    img = Image.new("L", (width, height), 255)
    ImageDraw.Draw(img).text((pad + dx - left, pad + dy - top), text, font=font, fill=0)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img, dtype=np.float32)
    if noise_sigma:
        arr = arr + rng.normal(0.0, noise_sigma, arr.shape)
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.repeat(arr[:, :, None], 3, axis=2)


def make_test_set(n: int, fonts: list[str]) -> list[tuple[str, np.ndarray, str, int]]:
    """(text, image, font name, size) for lines 0..n-1, cycling fonts and sizes."""
    out = []
    for i in range(n):
        font = fonts[i % len(fonts)]
        size = SIZES[(i // len(fonts)) % len(SIZES)]
        text = make_text(i)
        image = render_line(text, font, size, noise_sigma=8.0, blur=0.4 if i % 2 else 0.0,
                            seed_index=i)
        out.append((text, image, os.path.basename(font), size))
    return out


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalize(text: str) -> str:
    return " ".join(text.split())


def cer(references: list[str], hypotheses: list[str]) -> float:
    """Total edit distance over total reference length, whitespace runs collapsed."""
    errors = sum(edit_distance(normalize(r), normalize(h)) for r, h in zip(references, hypotheses))
    return errors / max(sum(len(normalize(r)) for r in references), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=120)
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--out", default="out/bench/ocr_quality.json")
    args = parser.parse_args(argv)

    from models.ocr import load
    fonts = find_fonts()
    if not fonts:
        print("no TrueType fonts found (matplotlib's DejaVu or `apt-get install fonts-dejavu-core`)")
        return 2
    data = make_test_set(args.lines, fonts)
    model = load()
    start = time.perf_counter()
    hyps = [" ".join(text for _, text, _ in model(image)) for _, image, _, _ in data]
    seconds = time.perf_counter() - start
    refs = [text for text, _, _, _ in data]
    per_font = {}
    for (ref, _, font, size), hyp in zip(data, hyps):
        per_font.setdefault(font, ([], []))
        per_font[font][0].append(ref)
        per_font[font][1].append(hyp)
    overall = cer(refs, hyps)
    report = {
        "lines": len(data), "fonts": [os.path.basename(f) for f in fonts], "sizes": list(SIZES),
        "cer": overall, "target": args.target, "passed": overall <= args.target,
        "cer_by_font": {f: cer(r, h) for f, (r, h) in sorted(per_font.items())},
        "lines_per_second": len(data) / seconds,
        "worst": sorted(({"ref": r, "hyp": h, "errors": edit_distance(normalize(r), normalize(h))}
                         for r, h in zip(refs, hyps)), key=lambda x: -x["errors"])[:5],
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    for font, value in report["cer_by_font"].items():
        print(f"  {font:32s} CER {value:.4f}")
    print(f"OCR CER over {len(data)} lines, {len(fonts)} fonts, sizes {SIZES}: {overall:.4f} "
          f"(target <= {args.target}) {'PASS' if report['passed'] else 'FAIL'}; "
          f"{report['lines_per_second']:.1f} lines/s")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
