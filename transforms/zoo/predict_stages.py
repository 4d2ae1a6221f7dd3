"""Beam stages of `tessera zoo-predict`: per-chunk weight features, then one fit-and-report task."""
from __future__ import annotations

import csv
import io

import apache_beam as beam
import numpy as np

from tessera.schemas.records import DeadLetter
from tessera.transforms.zoo import features as zoo_features
from tessera.transforms.zoo import release as zoo_release
from tessera.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, join
from tessera.transforms.core.progress import count

NAMESPACE = "zoo_predict"
DEAD = "dead_letters"


def final_rows(zoo_dir: str, chunk: int) -> list[dict]:
    """Chunks of {network_index, row, test_accuracy, diverged} for each network's last checkpoint.

    Only the small metrics columns are read; weights stay on disk until the workers mmap them.
    """
    metrics = zoo_release.read_metrics(zoo_dir)
    needed = {"step", "test_accuracy"}
    if not needed <= set(metrics.columns):
        raise zoo_release.ZooFormatError(f"{zoo_dir}/metrics.csv.gz lacks columns {sorted(needed - set(metrics.columns))}")
    metrics["row"] = np.arange(len(metrics))
    if "network_index" not in metrics.columns:  # released zoos: one network per run directory
        key = "modeldir" if "modeldir" in metrics.columns else None
        if key is None:
            raise zoo_release.ZooFormatError(f"{zoo_dir}/metrics.csv.gz has neither network_index nor modeldir")
        metrics["network_index"] = metrics[key].astype("category").cat.codes
    if "diverged" not in metrics.columns:
        metrics["diverged"] = False
    last = metrics.sort_values(["network_index", "step"]).groupby("network_index").tail(1)
    records = [{"network_index": int(r.network_index), "row": int(r.row),
                "test_accuracy": float(r.test_accuracy), "diverged": bool(r.diverged)}
               for r in last.itertuples()]
    return [records[i:i + chunk] for i in range(0, len(records), chunk)]


class _FeaturesFn(beam.DoFn):
    def __init__(self, zoo_dir: str):
        self._zoo_dir = zoo_dir

    def setup(self):
        self._precomputed = zoo_release.is_features_folder(self._zoo_dir)
        if self._precomputed:  # statistics computed where the zoo was trained
            self._row_of, self._features, _ = zoo_release.read_features(self._zoo_dir)
        else:
            self._table = zoo_release.read_layout(self._zoo_dir)
            self._weights = zoo_release.open_weights(self._zoo_dir, self._table)

    def _vectors(self, chunk: list[dict]):
        if self._precomputed:
            return [self._features[self._row_of[r["network_index"]]]
                    if r["network_index"] in self._row_of else np.array([np.nan]) for r in chunk]
        return self._weights[[r["row"] for r in chunk]]

    def _features_of(self, vector) -> list[float]:
        if self._precomputed:
            return [float(v) for v in vector]
        return zoo_features.weight_features(vector[None], self._table)[0].tolist()

    def process(self, chunk: list[dict]):
        for record, vector in zip(chunk, self._vectors(chunk)):
            key = f"network-{record['network_index']}"
            if record["diverged"] or not np.isfinite(vector).all() or not np.isfinite(record["test_accuracy"]):
                count(NAMESPACE, "excluded_diverged")
                yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(key, "features", "diverged",
                                                                "NaN weights or accuracy: excluded"))
                continue
            count(NAMESPACE, "networks")
            yield {**record, "features": self._features_of(vector)}


class ComputeFeatures(beam.PTransform):
    """PCollection[list of final-row records] -> (feature records, DeadLetters for NaN runs)."""

    def __init__(self, zoo_dir: str):
        super().__init__()
        self._zoo_dir = zoo_dir

    def expand(self, chunks):
        results = chunks | "Features" >> beam.ParDo(_FeaturesFn(self._zoo_dir)).with_outputs(DEAD, main="features")
        return results.features, results[DEAD]


def fit_and_report(records: list[dict], config) -> list[str]:
    """Fit on the keyed train half, score on the other half, write report/scatter/predictions."""
    records = sorted(records, key=lambda r: r["network_index"])
    if zoo_release.is_features_folder(config.zoo):
        names = zoo_release.read_features(config.zoo)[2]
    else:
        names = zoo_features.feature_names(zoo_release.read_layout(config.zoo))
    x = np.array([r["features"] for r in records], np.float64).reshape(len(records), -1)
    y = np.array([r["test_accuracy"] for r in records])
    ids = np.array([r["network_index"] for r in records], np.int64)
    train = np.array([zoo_features.in_train_half(int(i)) for i in ids], bool)
    if train.sum() < 2 or (~train).sum() < 2:
        raise ValueError(f"need >= 2 usable networks in each half, got {train.sum()} and {(~train).sum()}")
    fits = zoo_features.fit_and_score(x[train], y[train], x[~train], y[~train], seed=config.seed)
    excluded = _excluded_count(config.zoo, len(records))
    report = {
        "zoo": config.zoo,
        "num_features": int(x.shape[1]),
        "feature_names": names,
        "networks_used": int(len(records)),
        "networks_excluded_diverged": excluded,
        "train_networks": int(train.sum()),
        "test_networks": int((~train).sum()),
        "target": "test_accuracy at each network's final checkpoint",
        "split": "keyed: md5('zoo-predict:<network_index>')[0] < 128 -> train half",
        **{name: fit["scores"] for name, fit in fits.items()},
    }
    out = config.output
    atomic_write_json(join(out, "report.json"), report)
    png = zoo_features.plot_scatter(
        join(out, "scatter.png"), y[~train], {n: (f["prediction"], f["scores"]) for n, f in fits.items()},
        f"{len(records)} networks ({int((~train).sum())} held out); {excluded} diverged excluded")
    atomic_write_bytes(join(out, "scatter.png"), png)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["network_index", "test_accuracy"] + [f"pred_{n}" for n in fits])
    for k, i in enumerate(ids[~train]):
        writer.writerow([int(i), y[~train][k]] + [float(f["prediction"][k]) for f in fits.values()])
    atomic_write_text(join(out, "predictions.csv"), text.getvalue())
    for name, fit in fits.items():
        count(NAMESPACE, f"{name}_r2_x1000", int(round(1000 * fit["scores"]["r2"])))
    return [join(out, f) for f in ("report.json", "scatter.png", "predictions.csv")]


def _excluded_count(zoo_dir: str, used: int) -> int:
    """Networks in the zoo minus networks used (recounted so the report does not need Beam metrics)."""
    return sum(len(c) for c in final_rows(zoo_dir, 10**9)) - used


class FitAndReport(beam.PTransform):
    """PCollection[feature record] (56 floats each) -> written file names (one task)."""

    def __init__(self, config):
        super().__init__()
        self._config = config

    def expand(self, features):
        return (features
                | "Gather" >> beam.combiners.ToList()
                | "Fit" >> beam.FlatMap(fit_and_report, self._config))
