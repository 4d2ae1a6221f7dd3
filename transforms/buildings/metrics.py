"""Instance metrics for building footprints at IoU 0.5 (pure shapely/numpy, no Beam, no I/O).

Two standard views, as in the issue:
- AP50, COCO-style: predictions ranked by confidence; each in turn takes the unmatched label it
  overlaps most if IoU >= 0.5 (true positive) or counts as a false positive; AP is the mean of the
  interpolated precision at 101 recall points (precision made monotone from the right).
- Precision / recall / F1, SpaceNet-style: one-to-one matching of predictions to labels, greedy by
  IoU over all pairs with IoU >= 0.5, regardless of confidence.
Both need polygons in one planar CRS (pixels or a local metric CRS such as UTM).
"""
from __future__ import annotations

import numpy as np
import shapely

IOU_THRESHOLD = 0.5
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _clean(polys) -> list:
    out = []
    for p in polys:
        if p is None or p.is_empty:
            out.append(shapely.Polygon())
        elif not p.is_valid:
            out.append(shapely.make_valid(p))
        else:
            out.append(p)
    return out


def iou_pairs(preds, labels) -> dict[tuple[int, int], float]:
    """IoU of every (prediction index, label index) pair that intersects at all (STRtree query)."""
    preds, labels = _clean(preds), _clean(labels)
    if not preds or not labels:
        return {}
    tree = shapely.STRtree(labels)
    pi, li = tree.query(preds, predicate="intersects")
    out = {}
    for i, j in zip(pi.tolist(), li.tolist()):
        inter = shapely.area(shapely.intersection(preds[i], labels[j]))
        union = shapely.area(preds[i]) + shapely.area(labels[j]) - inter
        if union > 0 and inter > 0:
            out[(i, j)] = inter / union
    return out


def match_one_to_one(pairs: dict[tuple[int, int], float], threshold: float = IOU_THRESHOLD):
    """Greedy one-to-one matching by descending IoU; returns [(pred, label, iou)] with iou >= threshold."""
    matches, used_p, used_l = [], set(), set()
    for (i, j), iou in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        if iou < threshold:
            break
        if i in used_p or j in used_l:
            continue
        used_p.add(i)
        used_l.add(j)
        matches.append((i, j, iou))
    return matches


def precision_recall_f1(preds, labels, threshold: float = IOU_THRESHOLD) -> dict[str, float]:
    """SpaceNet-style precision, recall and F1 at IoU >= threshold, with the counts."""
    matches = match_one_to_one(iou_pairs(preds, labels), threshold)
    tp, n_pred, n_label = len(matches), len(preds), len(labels)
    precision = tp / n_pred if n_pred else (1.0 if n_label == 0 else 0.0)
    recall = tp / n_label if n_label else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": n_pred - tp,
            "fn": n_label - tp, "mean_matched_iou": float(np.mean([m[2] for m in matches])) if matches else 0.0}


def average_precision(preds, confidences, labels, threshold: float = IOU_THRESHOLD) -> float:
    """COCO-style AP at one IoU threshold (101-point interpolation). NaN when there are no labels."""
    if len(labels) == 0:
        return float("nan")
    if len(preds) == 0:
        return 0.0
    pairs = iou_pairs(preds, labels)
    by_pred: dict[int, list[tuple[float, int]]] = {}
    for (i, j), iou in pairs.items():
        by_pred.setdefault(i, []).append((iou, j))
    order = np.argsort(-np.asarray(confidences, dtype=np.float64), kind="stable")
    matched: set[int] = set()
    tp = np.zeros(len(preds))
    for rank, i in enumerate(order):
        best_iou, best_j = threshold, -1
        for iou, j in by_pred.get(int(i), ()):
            if j not in matched and iou >= best_iou:
                best_iou, best_j = iou, j
        if best_j >= 0:
            matched.add(best_j)
            tp[rank] = 1
    ctp = np.cumsum(tp)
    recall = ctp / len(labels)
    precision = ctp / np.arange(1, len(preds) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    interp = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(np.mean(interp))


def ap_key(threshold: float = IOU_THRESHOLD) -> str:
    """The metrics key of average precision at one IoU: ap50 at 0.5, ap10 at 0.1, ..."""
    return f"ap{threshold * 100:g}"


def evaluate(preds, confidences, labels, threshold: float = IOU_THRESHOLD) -> dict[str, float]:
    """All instance metrics: AP at `threshold` (keyed `ap_key(threshold)`: ap50 by default),
    precision, recall, f1 and counts."""
    out = {ap_key(threshold): average_precision(preds, confidences, labels, threshold)}
    out.update(precision_recall_f1(preds, labels, threshold))
    out.update({"n_predictions": len(preds), "n_labels": len(labels), "iou_threshold": threshold})
    return out


PRECISION_TARGETS = (0.80, 0.85, 0.90)
CURVE_THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 2)


def precision_recall_curve(preds, confidences, labels, thresholds=CURVE_THRESHOLDS,
                           iou_threshold: float = IOU_THRESHOLD) -> list[dict[str, float]]:
    """Precision, recall and F1 (one-to-one matching, as `precision_recall_f1`) of the predictions
    kept by `--min-confidence c`, for each c in `thresholds` (IoUs computed once)."""
    confidences = np.asarray(confidences, dtype=np.float64)
    pairs = iou_pairs(preds, labels)
    out = []
    for c in thresholds:
        kept = confidences >= c
        sub = {k: v for k, v in pairs.items() if kept[k[0]]}
        tp, n_pred, n_label = len(match_one_to_one(sub, iou_threshold)), int(kept.sum()), len(labels)
        precision = tp / n_pred if n_pred else float("nan")
        recall = tp / n_label if n_label else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        out.append({"min_confidence": float(c), "precision": precision, "recall": recall, "f1": f1,
                    "n_predictions": n_pred, "tp": tp})
    return out


def thresholds_for_precision(curve: list[dict], targets=PRECISION_TARGETS) -> dict[str, dict | None]:
    """For each precision target, the lowest --min-confidence whose precision reaches it (so the
    highest recall at that precision), as Open Buildings publishes per region; None if none does."""
    out = {}
    for target in targets:
        hits = [p for p in curve if p["n_predictions"] and p["precision"] >= target]
        out[f"{target:.2f}"] = min(hits, key=lambda p: p["min_confidence"]) if hits else None
    return out


def pixel_average_precision(probabilities, is_building) -> float:
    """Average precision of a probability map as a ranking of building pixels (scikit-learn's
    step-wise definition). It scores the model's pixels apart from how they become instances.
    NaN when no pixel is a building."""
    from sklearn.metrics import average_precision_score

    truth = np.asarray(is_building, dtype=bool).ravel()
    if not truth.any():
        return float("nan")
    return float(average_precision_score(truth, np.asarray(probabilities, dtype=np.float64).ravel()))
