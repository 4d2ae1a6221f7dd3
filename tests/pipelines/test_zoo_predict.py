"""zoo-predict: the 56 features, the keyed split, and the pipeline on a synthetic zoo with NaN runs."""
import json

import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from tessera.models import small_cnn
from tessera.pipelines import zoo_predict
from tessera.transforms.zoo import features as zoo_features
from tessera.transforms.zoo import release as zoo_release
from tessera.transforms.zoo.config import ZooPredictConfig

NUM_NETWORKS, NUM_NAN = 160, 5


def test_features_are_the_papers_56_statistics():
    table = small_cnn.layout()
    names = zoo_features.feature_names(table)
    assert len(names) == 56 and names[:2] == ["conv2d.bias.q0", "conv2d.bias.q25"]
    assert names[7] == "conv2d.kernel.q0" and names[-1] == "dense.kernel.mean"
    w = np.zeros((1, 4970))
    w[0, :16] = np.arange(16)  # conv2d bias: 0..15
    f = zoo_features.weight_features(w, table)[0]
    assert f.shape == (56,)
    np.testing.assert_allclose(f[:7], [0, 3.75, 7.5, 11.25, 15, np.std(np.arange(16)), 7.5])
    assert np.all(f[7:] == 0)


def test_split_is_keyed_and_about_half():
    flags = [zoo_features.in_train_half(i) for i in range(2000)]
    assert flags == [zoo_features.in_train_half(i) for i in range(2000)]
    assert 0.45 < np.mean(flags) < 0.55


def _synthetic_zoo(out):
    """Networks whose weight scale determines their 'accuracy', plus NaN runs."""
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.05, 0.5, NUM_NETWORKS)
    weights = (rng.normal(size=(NUM_NETWORKS, 4970)) * scale[:, None]).astype(np.float32)
    accuracy = 0.1 + 1.6 * (scale - 0.05)
    weights[-NUM_NAN:] = np.nan
    rows = [{"network_index": i, "step": 3, "diverged": i >= NUM_NETWORKS - NUM_NAN,
             "test_accuracy": np.nan if i >= NUM_NETWORKS - NUM_NAN else accuracy[i],
             "test_loss": 1.0, "train_accuracy": 0.5, "train_loss": 1.0}
            for i in range(NUM_NETWORKS)]
    rows = [{**{c: "x" for c in zoo_release.CONFIG_COLUMNS}, **r} for r in rows]
    zoo_release.assemble(str(out), [zoo_release.write_shard(str(out), "pop-00000", weights, rows)])
    zoo_release.write_layout(str(out))


def test_predicts_a_learnable_target_and_excludes_nan_runs(tmp_path):
    _synthetic_zoo(tmp_path / "zoo")
    config = ZooPredictConfig(zoo=str(tmp_path / "zoo"), output=str(tmp_path / "pred"), chunk=40)
    pipeline = TestPipeline()
    zoo_predict.build(pipeline, config)
    pipeline.run().wait_until_finish()
    report = json.loads((tmp_path / "pred" / "report.json").read_text())
    assert report["networks_excluded_diverged"] == NUM_NAN
    assert report["networks_used"] == NUM_NETWORKS - NUM_NAN
    assert report["num_features"] == 56
    assert report["linear"]["r2"] > 0.95 and report["linear"]["kendall_tau"] > 0.85
    assert report["gbm"]["r2"] > 0.6
    assert (tmp_path / "pred" / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "pred" / "COMPLETED").exists()
    dead = list((tmp_path / "pred" / "errors").glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in dead) == NUM_NAN


def test_corrupt_zoo_is_a_clear_error(tmp_path, capsys):
    _synthetic_zoo(tmp_path)
    (tmp_path / "layout.csv").unlink()
    with pytest.raises(zoo_release.ZooFormatError, match="missing layout.csv"):
        zoo_predict.build(TestPipeline(), ZooPredictConfig(zoo=str(tmp_path), output=str(tmp_path / "o"),
                                                           chunk=10))
    zoo_release.write_layout(str(tmp_path))
    (tmp_path / "weights.npy").write_bytes(b"not an npy file")
    assert zoo_predict.main(["--zoo", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "weights.npy is not a readable .npy array" in capsys.readouterr().err


def test_a_features_folder_gives_the_same_report_as_its_zoo(tmp_path):
    """What benchmarks/zoo_gpu.py writes (statistics, not weights) fits exactly like the zoo."""
    _synthetic_zoo(tmp_path / "zoo")
    table = zoo_release.read_layout(str(tmp_path / "zoo"))
    weights = zoo_release.open_weights(str(tmp_path / "zoo"), table)
    folder = tmp_path / "features"
    folder.mkdir()
    np.save(folder / "features.npy", zoo_features.weight_features(np.asarray(weights), table))
    np.save(folder / "network_indices.npy", np.arange(NUM_NETWORKS))
    (folder / "feature_names.json").write_text(json.dumps(zoo_features.feature_names(table)))
    (folder / "metrics.csv.gz").write_bytes((tmp_path / "zoo" / "metrics.csv.gz").read_bytes())
    reports = []
    for source in ("zoo", "features"):
        out = tmp_path / f"pred_{source}"
        assert zoo_predict.main(["--zoo", str(tmp_path / source), "--output", str(out), "--chunk", "40",
                                 "--direct_num_workers", "1", "--direct_running_mode", "in_memory"]) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    for name in ("gbm", "linear"):
        assert reports[1][name] == pytest.approx(reports[0][name], rel=1e-9)
    assert reports[1]["networks_used"] == NUM_NETWORKS - NUM_NAN
    assert reports[1]["feature_names"] == reports[0]["feature_names"]
