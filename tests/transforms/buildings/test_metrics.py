"""AP50 (COCO-style) and P/R/F1 (SpaceNet-style) on literal polygons, and `tessera buildings-eval`."""
import math

import numpy as np
import pytest
from shapely.geometry import box

from tessera.transforms.buildings import metrics as bm


def test_perfect_predictions():
    labels = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    m = bm.evaluate([box(0, 0, 10, 10), box(20, 0, 30, 10)], [0.9, 0.8], labels)
    assert m["ap50"] == pytest.approx(1.0)
    assert (m["precision"], m["recall"], m["f1"], m["tp"], m["fp"], m["fn"]) == (1.0, 1.0, 1.0, 2, 0, 0)


def test_iou_threshold_is_inclusive_and_strict_below():
    # IoU of [0,10]x[0,10] and [0,10]x[0,15]: 100 / 150 = 0.667 -> match; [5,15]x[0,10]: 50/150 -> no match
    assert bm.precision_recall_f1([box(0, 0, 10, 15)], [box(0, 0, 10, 10)])["tp"] == 1
    assert bm.precision_recall_f1([box(5, 0, 15, 10)], [box(0, 0, 10, 10)])["tp"] == 0
    pairs = bm.iou_pairs([box(0, 0, 10, 20)], [box(0, 0, 10, 10)])  # IoU exactly 0.5
    assert pairs[(0, 0)] == pytest.approx(0.5)
    assert len(bm.match_one_to_one(pairs)) == 1


def test_one_to_one_duplicates_are_false_positives():
    labels = [box(0, 0, 10, 10)]
    preds = [box(0, 0, 10, 10), box(0, 0, 10, 11)]
    m = bm.precision_recall_f1(preds, labels)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 0)
    assert m["precision"] == 0.5 and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(2 / 3)


def test_greedy_matching_prefers_highest_iou():
    # one prediction overlaps two labels; it must go to the better one, the other label then takes pred 2
    labels = [box(0, 0, 10, 10), box(11, 0, 21, 10)]
    preds = [box(1, 0, 11, 10), box(11, 0, 20, 10)]
    matches = bm.match_one_to_one(bm.iou_pairs(preds, labels))
    assert sorted((i, j) for i, j, _ in matches) == [(0, 0), (1, 1)]


def test_ap_ranks_by_confidence():
    labels = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    tp1, tp2, fp = box(0, 0, 10, 10), box(20, 0, 30, 10), box(50, 50, 60, 60)
    # FP ranked last: precision stays 1 up to recall 1 -> AP 1
    assert bm.average_precision([tp1, tp2, fp], [0.9, 0.8, 0.1], labels) == pytest.approx(1.0)
    # FP ranked first: P/R points (0,0), (1/2, 1/2), (2/3, 1). Envelope: 2/3 for every recall point.
    assert bm.average_precision([fp, tp1, tp2], [0.9, 0.8, 0.7], labels) == pytest.approx(2 / 3)
    # FP in the middle: (1, .5), (.5, .5), (.667, 1): recall <= .5 -> 1, above -> 2/3 (51 and 50 points)
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert bm.average_precision([tp1, fp, tp2], [0.9, 0.8, 0.7], labels) == pytest.approx(expected)


def test_ap_with_missed_labels_caps_at_recall():
    labels = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    # only one of two found: precision 1 up to recall 0.5 (51 of 101 points), 0 after
    assert bm.average_precision([box(0, 0, 10, 10)], [0.5], labels) == pytest.approx(51 / 101)


def test_empty_inputs():
    assert math.isnan(bm.average_precision([box(0, 0, 1, 1)], [1.0], []))
    assert bm.average_precision([], [], [box(0, 0, 1, 1)]) == 0.0
    m = bm.precision_recall_f1([], [box(0, 0, 1, 1)])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert bm.precision_recall_f1([], [])["f1"] == 1.0  # nothing to find, nothing claimed


def test_invalid_polygon_is_repaired_not_crashing():
    bowtie = __import__("shapely").Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    # make_valid turns the bow-tie into its two triangles (area 50): IoU with the square is 0.5
    assert bm.iou_pairs([bowtie], [box(0, 0, 10, 10)])[(0, 0)] == pytest.approx(0.5)
    assert bm.precision_recall_f1([bowtie], [box(0, 0, 10, 10)])["tp"] == 1


def test_buildings_eval_cli_on_geoparquet_and_csv(tmp_path):
    """`tessera buildings-eval` on predictions made from the true labels: one dropped, one shifted away."""
    import json

    import geopandas as gpd
    import shapely

    from tessera.pipelines import buildings_eval
    from tessera.pipelines import synth_scene

    info = synth_scene.write_scene(str(tmp_path / "scene"), seed=21, size=192)
    labels = gpd.read_file(info["labels"])
    n = len(labels)
    assert n >= 4
    preds = labels.iloc[1:].copy()  # label 0 missed
    utm = preds.to_crs(labels.estimate_utm_crs())
    utm.loc[utm.index[0], "geometry"] = shapely.affinity.translate(utm.geometry.iloc[0], 500.0, 0.0)  # a FP
    preds = utm.to_crs(4326)
    preds["confidence"] = np.linspace(0.9, 0.5, len(preds))
    (tmp_path / "pred" / "s2_token=abc").mkdir(parents=True)
    preds[["confidence", "geometry"]].to_parquet(tmp_path / "pred" / "s2_token=abc" / "part-00000.parquet")
    out_json, png = tmp_path / "eval.json", tmp_path / "eval.png"
    assert buildings_eval.main(["--predictions", str(tmp_path / "pred"), "--labels", info["labels"],
                                "--image", info["image"], "--output-json", str(out_json), "--png", str(png)]) == 0
    m = json.loads(out_json.read_text())
    assert (m["tp"], m["fp"], m["fn"]) == (n - 2, 1, 2)
    assert m["recall"] == pytest.approx((n - 2) / n) and m["precision"] == pytest.approx((n - 2) / (n - 1))
    assert m["crs"].endswith("32630") and png.stat().st_size > 10_000
    # the CSV variant (WKT geometry, gzip) gives the same numbers
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    pd_frame = preds.assign(geometry=preds.geometry.to_wkt())[["confidence", "geometry"]]
    pd_frame.to_csv(csv_dir / "abc_buildings.csv.gz", index=False)
    assert buildings_eval.main(["--predictions", str(csv_dir), "--labels", info["labels"],
                                "--output-json", str(out_json)]) == 0
    m2 = json.loads(out_json.read_text())
    assert (m2["tp"], m2["fp"], m2["fn"]) == (m["tp"], m["fp"], m["fn"])


def test_precision_recall_curve_and_the_thresholds_that_reach_a_precision():
    labels = [box(i * 20, 0, i * 20 + 10, 10) for i in range(4)]
    preds = labels[:3] + [box(100, 0, 110, 10), box(200, 0, 210, 10)]  # 3 hits, 2 false buildings
    conf = [0.9, 0.8, 0.5, 0.7, 0.3]
    curve = bm.precision_recall_curve(preds, conf, labels, thresholds=[0.0, 0.4, 0.5, 0.6, 0.75, 0.85, 0.95])
    by_c = {p["min_confidence"]: p for p in curve}
    assert (by_c[0.0]["tp"], by_c[0.0]["n_predictions"]) == (3, 5)
    assert by_c[0.4]["precision"] == pytest.approx(3 / 4) and by_c[0.4]["recall"] == pytest.approx(3 / 4)
    assert by_c[0.5]["n_predictions"] == 4  # --min-confidence 0.5 keeps a 0.5 building
    assert by_c[0.6]["precision"] == pytest.approx(2 / 3)  # 0.9, 0.8 hit; 0.7 false
    assert by_c[0.75]["precision"] == 1.0 and by_c[0.75]["recall"] == 0.5
    assert math.isnan(by_c[0.95]["precision"]) and by_c[0.95]["n_predictions"] == 0
    thresholds = bm.thresholds_for_precision(curve, targets=(0.7, 0.9))
    assert thresholds["0.70"]["min_confidence"] == 0.4  # the lowest threshold, so the most recall
    assert thresholds["0.90"]["min_confidence"] == 0.75
    assert bm.thresholds_for_precision(curve, targets=(1.01,)) == {"1.01": None}


def test_buildings_eval_counts_false_buildings_in_free_regions_and_refuses_missing_predictions(
        tmp_path, capsys):
    import geopandas as gpd

    from tessera.pipelines import buildings_eval

    crs = "EPSG:32633"
    preds = gpd.GeoDataFrame({"confidence": [0.9, 0.6, 0.8]},
                             geometry=[box(0, 0, 10, 10), box(100, 100, 110, 110), box(300, 0, 305, 5)], crs=crs)
    regions = gpd.GeoDataFrame({"kind": ["trees", "lawn"]},
                               geometry=[box(90, 90, 150, 150), box(200, 200, 250, 250)], crs=crs)
    out = buildings_eval.false_in_free_regions(preds, regions, crs)
    assert out["false_buildings"] == 1 and out["by_kind"] == {"trees": 1, "lawn": 0}
    assert out["free_area_m2"] == pytest.approx(3600 + 2500)
    labels = tmp_path / "labels.geojson"
    regions.to_crs(4326).to_file(labels, driver="GeoJSON")
    assert buildings_eval.main(["--predictions", str(tmp_path / "nowhere"), "--labels", str(labels)]) == 2
    assert "no GeoParquet or CSV files there" in capsys.readouterr().err


def test_with_an_image_only_labels_on_it_are_scored():
    import geopandas as gpd

    from tessera.pipelines import buildings_eval

    labels = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10), box(90, 0, 110, 10), box(500, 0, 510, 10)],
                              crs="EPSG:32633")
    kept = buildings_eval.within_extent(labels, (0.0, 100.0, -50.0, 50.0), "EPSG:32633")
    assert list(kept.index) == [0]  # the second straddles the edge: its centroid is off the image


def test_buildings_eval_scores_at_the_iou_asked_for(tmp_path, capsys):
    """--iou: a prediction covering a third of a house is missed at 0.5 and found at 0.1, and the
    AP key names its IoU; an IoU outside (0, 1] is a one-line error."""
    import geopandas as gpd

    from tessera.pipelines import buildings_eval

    crs = "EPSG:32633"
    labels = gpd.GeoDataFrame(geometry=[box(0, 0, 30, 10), box(100, 0, 110, 10)], crs=crs)
    preds = gpd.GeoDataFrame({"confidence": [0.9, 0.8]}, geometry=[box(0, 0, 10, 10), box(100, 0, 110, 10)],
                             crs=crs)  # IoU 1/3 with the first house, 1 with the second
    strict, _ = buildings_eval.evaluate_frames(preds, labels, crs)
    loose, outcome = buildings_eval.evaluate_frames(preds, labels, crs, iou=0.1)
    assert (strict["tp"], loose["tp"]) == (1, 2) and outcome["tp_label"] == {0, 1}
    assert "ap50" in strict and loose["ap10"] == pytest.approx(1.0) and "ap50" not in loose
    assert loose["pr_curve"][0]["tp"] == 2
    preds.to_crs(4326).to_file(tmp_path / "p.geojson", driver="GeoJSON")
    for bad in ("0", "1.5"):
        assert buildings_eval.main(["--predictions", str(tmp_path), "--labels", str(tmp_path / "p.geojson"),
                                    "--iou", bad]) == 2
        assert "--iou" in capsys.readouterr().err
