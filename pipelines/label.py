"""`tessera label`: batch-label an image corpus with OCR, PaliGemma, SigLIP/LiT zero-shot classes
(and image embeddings), Gemini (hosted, one request per image) or a TF SavedModel classifier.

read (image globs, or Parquet/TFRecord of encoded images) -> skip keys already done (--resume)
-> size probe -> group by (size bucket, shard) into batches -> decode (EXIF, RGB, bomb check)
-> RunInference(handler).with_exception_handling() -> Parquet shards (LABEL_SCHEMA) in labels/,
dead letters (key, stage, reason) in errors/, then manifest.json and COMPLETED.

Local:
  tessera label --input 'scans/*.png' --output out/ocr --model ocr
  tessera label --input 'out/mixture/*.parquet' --output out/captions \\
      --model paligemma:ckpt/pt_224.npz,ckpt/tokenizer.model --prompt 'caption en' --batch-size 16
  tessera label --input 'photos/*.jpg' --output out/cls --model savedmodel:models/mobilenet
  tessera label --input 'imgs/*.jpg' --output out/zs --model siglip:ckpt/siglip.npz \\
      --classes 'cat,dog,car' --prompt 'a photo of a {}.' --embeddings
  tessera label --input 'tiles/*.png' --output out/det --model owlvit:ckpt/owl-vit-b32 \\
      --queries 'car ; roof ; pool' --min-score 0.1
  (a killed run continues with the same command plus --resume)

Dataflow, GPU workers (the model stage only gets the accelerator hint):
  tessera label --input 'gs://B/images/*.jpg' --output gs://B/labels/run1 \\
      --model paligemma:gs://B/ckpt/pt_224.npz,gs://B/ckpt/tokenizer.model --prompt 'caption en' \\
      --batch-size 64 --accelerator 'type:nvidia-l4;count:1;install-nvidia-driver' \\
      --runner DataflowRunner --project P --region us-central1 --temp_location gs://B/tmp \\
      --setup_file ./setup.py --sdk_container_image IMAGE_WITH_CUDA_JAX \\
      --machine_type g2-standard-8 --experiments use_runner_v2 --number_of_worker_harness_threads 1
Dataflow, CPU workers (OCR): same without --accelerator/--sdk_container_image, --model ocr.
"""
from __future__ import annotations

import sys
import uuid

import apache_beam as beam

from tessera.config import ConfigError, to_dict
from tessera.fileio import join
from tessera.models.registry import check_files, make_handler, parse, weights_file
from tessera.pipelines import common
from tessera.transforms.core.output_dir import OutputContract
from tessera.transforms.core.outputs import FinalizeOutput, WriteDeadLetters
from tessera.transforms.core.progress import LogProgress
from tessera.transforms.label.config import LabelConfig
from tessera.transforms.label.input_stages import ReadDoneKeys, ReadLabelInputs
from tessera.transforms.label.inputs import ERRORS_SUBDIR, LABELS_SUBDIR
from tessera.transforms.label.stages import BatchBySizeBucket, LabelBatches, WriteLabelShards

WORKLOAD = "label"
PROG = "tessera label"
__all__ = ["LabelConfig", "build", "main"]
OUTPUT = OutputContract(WORKLOAD, owned=(LABELS_SUBDIR + "/", ERRORS_SUBDIR + "/"), resumable=True)


def build(pipeline: beam.Pipeline, config: LabelConfig) -> dict:
    """Wire the label stages; returns the named output PCollections."""
    spec = parse(config.model, workload=WORKLOAD)
    handler = make_handler(spec, batch_size=config.batch_size, accelerator=config.accelerator,
                           resolution=config.resolution, max_decode_len=config.max_decode_len,
                           top_k=config.top_k, class_names=config.class_names(),
                           embeddings=config.embeddings, prompt=config.prompt,
                           queries=config.query_names(), min_score=config.min_score,
                           max_boxes=config.max_boxes, capacity_ratio=config.capacity_ratio)
    if config.resume:
        done = pipeline | "ReadDoneKeys" >> ReadDoneKeys(config.output)
    else:
        done = pipeline | "NoDoneKeys" >> beam.Create([], reshuffle=False).with_output_types(str)
    read_step = ReadLabelInputs(
        list(config.inputs), done, input_format=config.input_format,
        image_column=config.image_column, key_column=config.key_column,
        max_file_bytes=config.max_file_bytes)
    read = pipeline | "ReadInputs" >> read_step
    batches = read["main"] | "BatchBySizeBucket" >> BatchBySizeBucket(
        config.batch_size, prompt=config.prompt, num_shards=config.bucket_shards,
        max_pixels=config.max_pixels)
    labelled = batches["main"] | "Label" >> LabelBatches(handler, config.accelerator)
    to_label = read["main"] | "CountToLabel" >> beam.combiners.Count.Globally()
    shards = (labelled["main"]
              | "Progress" >> LogProgress(WORKLOAD, "labelled_rows", every=100, total=to_label)
              | "WriteLabels" >> WriteLabelShards(join(config.output, LABELS_SUBDIR),
                                                  config.rows_per_shard, config.flush_seconds))
    dead = ((read["dead"], batches["dead"], labelled["dead"])
            | "FlattenDeadLetters" >> beam.Flatten())
    dead_files = dead | "WriteErrors" >> WriteDeadLetters(
        # One name per attempt: a resumed run skips keys already dead-lettered, so it must never
        # overwrite an earlier attempt's error file (a fixed --run-id would name both the same).
        config.output, subdir=ERRORS_SUBDIR,
        prefix=f"dead_letters-{config.run_id}-{uuid.uuid4().hex[:8]}")
    manifest = {"labelled": labelled["main"], "errors": dead, "label_shards": shards,
                "error_files": dead_files} | "Finalize" >> FinalizeOutput(
        config.output, workload=WORKLOAD, config=to_dict(config),
        inputs=input_fingerprint(config, read_step.input_format), model_path=weights_file(spec),
        extra={"model_name": spec.name, "run_id": config.run_id}, contract=OUTPUT)  # "model" holds path + sha256
    return {"labels": labelled["main"], "dead_letters": dead, "shards": shards,
            "manifest": manifest}


def input_fingerprint(config: LabelConfig, input_format: str):
    """Record files (few, large) are fingerprinted; image globs (maybe millions of files) are
    recorded as patterns only, so the driver never lists or hashes a whole corpus."""
    if input_format == "images":
        return {"patterns": list(config.inputs), "fingerprinted": False}
    return list(config.inputs)


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, LabelConfig, argv)
        config.class_names()  # an unreadable --classes-file fails here, not in the pipeline
        check_files(parse(config.model, workload=WORKLOAD))
        common.require_match("--input", list(config.inputs))
    except (ConfigError, ValueError) as err:
        return common.input_error(PROG, err)
    return common.run_workload(PROG, build, config, options, OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
