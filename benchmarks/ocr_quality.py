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
import json
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fixtures.text_lines import (SIZES, cer, edit_distance, find_fonts,  # noqa: E402
                                      make_test_set, normalize)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=120)
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--out", default="out/bench/ocr_quality.json")
    args = parser.parse_args(argv)

    from tessera.models.ocr import load
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
