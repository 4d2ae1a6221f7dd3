"""Every workload reading and writing gs:// (a local GCS emulator), on the local runner and on the
PortableRunner with external SDK workers: finished directories (COMPLETED, manifest), identical
outputs on both runners, no temporary file left, a finished run skipped, --overwrite leaving
nothing of the previous run, --resume continuing a killed run; and the plain tools
buildings-train and buildings-eval on gs:// paths."""
import io
import json

import numpy as np
import pytest

from tessera import fileio
from tests.fixtures.workload_cases import (CASES, assert_same_outputs, list_files, outputs, run_case,
                                           temporary_files, write_inputs)

pytestmark = pytest.mark.gcs


@pytest.fixture(scope="module")
def gcs_inputs(gcs, tmp_path_factory):
    root = f"gs://{gcs.bucket}/inputs"
    write_inputs(str(tmp_path_factory.mktemp("staging")), root)
    return root


def _manifest(out: str) -> dict:
    return json.loads(fileio.read_bytes(fileio.join(out, "manifest.json")))


@pytest.mark.parametrize("name", list(CASES))
def test_workload_reads_and_writes_gcs_on_both_runners(name, gcs_inputs, beam_services, gs_root):
    case = CASES[name]
    local, portable = f"{gs_root}/local", f"{gs_root}/portable"
    run_case(case, gcs_inputs, local, [])
    run_case(case, gcs_inputs, portable, beam_services.pipeline_args())
    assert_same_outputs(case, local, portable)  # COMPLETED, manifest, what a correct run writes
    assert temporary_files(list_files(gs_root)) == []  # nowhere under the test's prefix
    # the same command on a finished directory is skipped: nothing is rewritten
    main, argv = case.steps(gcs_inputs, local)[0]
    directory = fileio.join(local, case.directories[0]) if case.directories[0] else local
    before = _manifest(directory)
    assert main(argv) == 0
    assert _manifest(directory) == before


def test_overwrite_leaves_nothing_of_the_previous_run(gcs_inputs, gs_root):
    """A GCS "directory" is a name prefix (`exists` is False for it), so an --overwrite that
    deletes folders by name deletes nothing: here a stale partition and a stale dead-letter file
    of an older run must go, and the redone directory holds exactly what a clean run writes."""
    case = CASES["buildings"]
    out = f"{gs_root}/buildings"
    run_case(case, gcs_inputs, out, [])
    clean = outputs(out)
    stale = [f"{out}/buildings/s2_token=0000/part-00000.parquet", f"{out}/errors/dead_letters-old.jsonl"]
    for path in stale:
        fileio.atomic_write_bytes(path, b"from an older run")
    (main, argv), = case.steps(gcs_inputs, out)
    assert main([*argv, "--overwrite"]) == 0
    redone = outputs(out)
    assert sorted(redone) == sorted(clean), sorted(set(redone) ^ set(clean))
    assert all(redone[p] == clean[p] for p in clean if p.startswith("buildings/"))
    assert _manifest(out)["created_at"] != json.loads(clean["manifest.json"])["created_at"]


@pytest.mark.parametrize("runner", ["local", "portable"])
def test_label_resume_after_a_killed_run(runner, gcs_inputs, beam_services, gs_root):
    """A run killed before COMPLETED, with a written label shard lost: --resume relabels only
    what is missing (the workers read the done keys from gs://), no key twice, none lost."""
    args = [] if runner == "local" else beam_services.pipeline_args()
    case, out = CASES["label"], f"{gs_root}/label"
    run_case(case, gcs_inputs, out, args)
    shards = list_files(f"{out}/labels")
    assert shards
    fileio.delete([f"{out}/COMPLETED", shards[0]])
    (main, argv), = case.steps(gcs_inputs, out)
    assert main([*argv, "--resume", "--run-id", "resumed", *args]) == 0
    files = outputs(out)
    assert "COMPLETED" in files and temporary_files(files) == []
    import pyarrow.parquet as pq

    keys = [k for p, data in files.items() if p.startswith("labels/")
            for k in pq.read_table(io.BytesIO(data)).column("key").to_pylist()]
    errors = [json.loads(line)["key"] for p, data in files.items() if p.startswith("errors/")
              for line in data.decode().splitlines() if line.strip()]
    inputs = [m.path for m in fileio.match_paths(f"{gcs_inputs}/label/*")]
    assert len(keys) == len(set(keys)) and len(errors) == len(set(errors)) == 2
    assert sorted(keys + errors) == sorted(inputs)


def test_cnn_zoo_resume_reuses_a_finished_shard_on_gcs(gcs_inputs, beam_services, gs_root):
    """--resume on the PortableRunner: a worker finds a finished population shard on gs:// and
    reuses it instead of training that population again."""
    from tests.pipelines.test_zoo import _config, _planted_shard

    case, out = CASES["cnn-zoo"], f"{gs_root}/zoo"
    (main, argv), = case.steps(gcs_inputs, out)
    _planted_shard(out, _config(out, resume=True), epochs=1)  # recognisable weights: all 7.0
    assert main([*argv, "--resume", *beam_services.pipeline_args()]) == 0
    weights = np.load(io.BytesIO(fileio.read_bytes(f"{out}/weights.npy")))
    rows = len(weights) // 3
    assert np.all(weights[:rows] == 7.0) and not np.any(weights[rows:] == 7.0)
    assert fileio.exists(f"{out}/COMPLETED") and temporary_files(list_files(out)) == []


def _street_gpkg(path: str) -> None:
    """Real-layout footprints for --world-seeds: two rows of houses along a street (EPSG:32633)."""
    import geopandas as gpd
    import shapely

    houses = [shapely.box(500_000 + x, 4_000_000 + y, 500_000 + x + 12, 4_000_000 + y + 10)
              for x in range(5, 250, 25) for y in (60, 110)]
    gpd.GeoDataFrame(geometry=houses, crs=32633).to_file(path, layer="buildings", driver="GPKG")


def test_buildings_train_and_eval_read_and_write_gcs(gcs_inputs, gs_root, tmp_path):
    """buildings-train: GeoTIFF, labels and real layouts from gs://, model and card to gs://;
    buildings runs that model from gs://; buildings-eval: predictions, labels and image from
    gs://, scores and PNGs to gs://."""
    from tessera.models import unet
    from tessera.pipelines import buildings, buildings_eval, buildings_train, synth_scene
    from tests.fixtures.workload_cases import upload_tree
    from tests.training.buildings.test_trainer import TINY

    scene = synth_scene.write_scene(f"{gs_root}/scene", seed=5, size=64)
    _street_gpkg(str(tmp_path / "street.gpkg"))
    upload_tree(str(tmp_path), f"{gs_root}/footprints")
    model = f"{gs_root}/model/unet.msgpack"
    assert buildings_train.main(["--images", scene["image"], "--labels", scene["labels"],
                                 "--unlabelled", scene["image"], "--no-mixup", "--no-self-training",
                                 "--world-seeds", "0:1", "--layouts", f"{gs_root}/footprints",
                                 "--synthetic-size", "64", "--output", model, *TINY]) == 0
    card = json.loads(fileio.read_bytes(f"{gs_root}/model/unet.json"))
    assert card["data"]["labelled_tiles"] == 2 and card["data"]["images"] == scene["image"]
    assert unet.config_from_params(unet.load(model).params) == unet.TINY_CONFIG

    tiles = f"{gcs_inputs}/buildings"
    assert buildings.main(["--input", f"{tiles}/*.tif", "--output", f"{gs_root}/unet", "--model", model,
                           "--tile-size", "48", "--overlap", "16"]) == 0
    assert _manifest(f"{gs_root}/unet")["model"]["path"] == model

    predictions = f"{gs_root}/pred"
    run_case(CASES["buildings"], gcs_inputs, predictions, [])
    scores = f"{gs_root}/eval/scores.json"
    assert buildings_eval.main(["--predictions", predictions, "--labels", f"{tiles}/labels.geojson",
                                "--output-json", scores, "--pr-png", f"{gs_root}/eval/pr.png"]) == 0
    result = json.loads(fileio.read_bytes(scores))
    assert result["f1"] == 1.0 and result["tp"] == 2  # the stand-in model finds both, whole
    assert buildings_eval.main(["--predictions", predictions, "--labels", f"{tiles}/labels.geojson",
                                "--image", f"{tiles}/right.tif", "--png", f"{gs_root}/eval/right.png"]) == 0
    for png in ("pr.png", "right.png"):
        assert fileio.read_bytes(f"{gs_root}/eval/{png}")[:4] == b"\x89PNG"
    assert temporary_files(list_files(gs_root)) == []


def test_remove_tree_deletes_every_object_under_a_prefix(gs_root):
    """On GCS a directory is only a prefix: no object is named like it, so deleting it by name
    deletes nothing. remove_tree deletes every object under it (more than one batch here) and
    nothing beside it."""
    names = [f"d/part-{i:03d}" for i in range(104)] + ["d/sub/deeper.txt", "dd.txt", "d.txt"]
    for name in names:
        with fileio.create(f"{gs_root}/{name}") as f:
            f.write(b"x")
    assert not fileio.exists(f"{gs_root}/d") and fileio.is_dir(f"{gs_root}/d")
    assert len(fileio.list_tree(f"{gs_root}/d")) == 105
    fileio.remove_tree(f"{gs_root}/d")
    assert list_files(gs_root) == [f"{gs_root}/d.txt", f"{gs_root}/dd.txt"]
    assert not fileio.is_dir(f"{gs_root}/d")
    fileio.remove_tree(f"{gs_root}/missing/")  # nothing there: fine
