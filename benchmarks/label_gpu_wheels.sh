#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the wheels that benchmarks/label_gpu.sh installs on the device
# machine: Apache Beam and the requirements of it (and of `tessera label`) that its image lacks
# (it has JAX, numpy, pyarrow, Pillow, sentencepiece, protobuf, grpcio; no network there).
# Run here, where pip reaches PyPI; then carry .whl with the device run (about 40 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# The versions this repo's venv runs Beam 2.78 with; protobuf too, so Beam's generated code never
# meets a runtime of another major version (it shadows the image's for this run only)
WHEELS=(apache-beam==2.78.0 fastavro==1.13.1 fasteners==0.20 httplib2==0.32.1 jsonpickle==4.1.4
        objsize==0.7.1 orjson==3.13.0 proto-plus==1.29.0 pytz==2026.6 zstandard==0.25.0
        beartype==0.22.9 pymongo==4.20.1 dnspython==2.9.2 cryptography==51.0.1 cffi==2.1.1
        pycparser==3.12 google-crc32c==1.9.0 protobuf==6.33.6)
PLATFORMS=()
for n in 17 24 27 28 31 34; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
rm -rf .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${WHEELS[@]}" 2>&1 | grep -v "^WARNING: Location" || true
test "$(ls .whl | wc -l)" -eq "${#WHEELS[@]}" || { ls .whl; echo "missing wheels"; exit 1; }
du -sh .whl
