"""Packaging for Tessera; also what ships the code to Dataflow workers (--setup_file ./setup.py)."""
import setuptools

VERSION = "0.1.0"

# The top-level folders install under one `tessera.` namespace, so generic names such as `models`
# or `pipelines` cannot collide with other packages on a worker.
FOLDERS = ("schemas", "transforms", "models", "training", "pipelines")
PACKAGE_DIR = {"tessera": "tessera", **{f"tessera.{folder}": folder for folder in FOLDERS}}
PACKAGES = ["tessera"] + [
    f"tessera.{folder}" + (f".{sub}" if sub else "")
    for folder in FOLDERS
    for sub in [""] + setuptools.find_packages(where=folder)
]

INSTALL_REQUIRES = [
    "apache-beam[gcp]>=2.60",
    "tensorflow-cpu>=2.16",
    "tensorflow-hub>=0.16",  # imported by Beam's TF model handler
    "jax>=0.4.30",
    "flax>=0.10",
    "optax>=0.2",
    "numpy>=1.26",
    "rasterio>=1.3",
    "shapely>=2.0",
    "geopandas>=1.0",
    "pyproj>=3.6",
    "gcsfs>=2024.2",
    "pyarrow>=15",
    "safetensors>=0.4",  # Hugging Face checkpoints (models/siglip/hf.py)
    "pandas>=2.1",
    "s2sphere>=0.2.5",
    "openlocationcode>=1.0.1",
    "mlxtend>=0.23",
    "scikit-learn>=1.4",
    "scipy>=1.11",
    "matplotlib>=3.8",
    "pillow>=10",
    "jsonschema>=4.20",
    "pyyaml>=6",
    "rapidocr-onnxruntime>=1.3",
    "opencv-python>=4.8",  # mixture decode (cv2); also what rapidocr-onnxruntime pulls in
    "onnxruntime>=1.17",
    "sentencepiece>=0.2",
    "tokenizers>=0.15",  # CLIP BPE for OWL-ViT queries (models/owlvit/tokenizer.py)
    "google-crc32c>=1.5",
]

setuptools.setup(
    name="tessera",
    version=VERSION,
    description="Vision research workloads as Apache Beam pipelines.",
    python_requires=">=3.11",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"tessera.models": ["weights/*.msgpack", "weights/*.json", "weights/*.md"],
                  "tessera.schemas": ["*.json", "*.md"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "gpu": ["jax[cuda12]"],
        # gcp-storage-emulator: the gs:// suite's local GCS (make test-gcs)
        "test": ["pytest>=8", "pytest-xdist>=3", "gcp-storage-emulator>=2024.8"],
        # benchmarks/parity_*.py only, not the tests: HF SiglipModel (siglip), timm's
        # VisionTransformer / MlpMixer (vit, mixer) as the references; CPU torch build
        "parity": ["torch==2.13.0", "transformers", "timm>=1.0"],
    },
    entry_points={"console_scripts": ["tessera=tessera.pipelines.cli:main"]},
)
