#!/usr/bin/env bash
# Gather what the GPU check needs on the lent H200 machine, which has no package registry, into
# .whl/ (git-ignored; it travels with the working tree when a `run` names it in `carry`):
#
#   - the wheels of vadclip's runtime dependencies that the machine's image lacks, and theirs in
#     turn (the image's package list: /work/.library/device/KINDS.md, "Python packages already
#     there"), as CPython 3.12 manylinux x86-64 wheels, each at the version installed here (so the
#     device runs what CI runs), else the newest;
#   - shared-fixtures.tar.xz: the AnomalyCLIP fixture checkpoint (26 MB, 4.5 MB compressed) and,
#     if it fits, its parity file, unpacked by benchmarks/gpu_check.sh (../shared does not travel;
#     the VadCLIP fixture checkpoint, 96 MB, does not fit: its tests skip there).
#
# Everything that travels must stay under 64 MiB (wheels + the working tree); the script stops
# with an error if the wheels alone do not fit and prints the total.
#
#   bash scripts/bundle_wheels.sh            # av, decord, open_clip_torch, ftfy, wcwidth + fixture
#   bash scripts/bundle_wheels.sh --nvdec    # PyNvVideoCodec (GPU decoding, 27 MB) instead of
#                                            # decord and the fixture (they do not fit together)
set -euo pipefail
cd "$(dirname "$0")/.."

NVDEC=0
for arg in "$@"; do
  case "$arg" in
    --nvdec) NVDEC=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $arg (use --nvdec or nothing)" >&2; exit 2 ;;
  esac
done
SHARED="${VADCLIP_SHARED:-$(cd .. && pwd)/shared}"
LIMIT=$((64 * 1024 * 1024))
MARGIN=$((1024 * 1024))          # room for files added to the tree before the run

rm -rf .whl
mkdir -p .whl
git check-ignore -q .whl/x.whl || { echo "error: .whl/ must be git-ignored (.gitignore)" >&2; exit 1; }

NVDEC=$NVDEC python3 - <<'EOF'
"""Resolve which packages to carry, download them, and check the size."""
import os
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# /work/.library/device/KINDS.md, "Python packages already there" (nvidia-h200, read 2026-11-17).
DEVICE_HAS = {canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib
mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx
optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp
""".split()}
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "platform_machine": "x86_64",
          "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
NVDEC = os.environ["NVDEC"] == "1"
wheels = Path(".whl")


def runtime_requirements() -> list[Requirement]:
    """vadclip's [project] dependencies (the library; the app's extras are not needed there)."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    if NVDEC:
        reqs = [r for r in reqs if canonicalize_name(r.name) != "decord"] + [Requirement("PyNvVideoCodec")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(TARGET)]


def download(name: str) -> Path:
    try:
        spec = f"{name}=={metadata.version(name)}"        # what CI runs
    except metadata.PackageNotFoundError:
        spec = name
    before = set(wheels.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(wheels), spec], check=True)
    (new,) = set(wheels.glob("*.whl")) - before
    print(f"  {new.name}  {new.stat().st_size / 2**20:.1f} MiB  ({spec})")
    return new


def requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(l.split(":", 1)[1].strip()) for l in lines if l.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(TARGET)]


todo = runtime_requirements()
seen: set[str] = set()
present: set[str] = set()
print("carried (the device image lacks them):")
while todo:
    req = todo.pop(0)
    name = canonicalize_name(req.name)
    if name in DEVICE_HAS:
        present.add(name)
    if name in seen or name in DEVICE_HAS:
        continue
    seen.add(name)
    todo += requires(download(req.name))
print("already on the device:", ", ".join(sorted(present)))
EOF

tree_bytes() {   # what travels besides .whl: tracked and untracked-not-ignored files
  git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}'
}
whl_bytes() { du -sb .whl | cut -f1; }

TREE=$(tree_bytes)
if [ $((TREE + $(whl_bytes) + MARGIN)) -gt $LIMIT ]; then
  echo "error: wheels $(($(whl_bytes) >> 20)) MiB + tree $((TREE >> 20)) MiB exceed the 64 MiB the device takes" >&2
  exit 1
fi

if [ "$NVDEC" = 0 ] && [ -f "$SHARED/fixtures/anomalyclip/official_xd.ckpt" ]; then
  files=(fixtures/anomalyclip/README.md fixtures/anomalyclip/official_xd.ckpt)
  pack() { tar -C "$SHARED" -cf - "$@" | xz -6 -T0 > .whl/shared-fixtures.tar.xz; }
  pack "${files[@]}" fixtures/anomalyclip/parity_xd.npz
  if [ $((TREE + $(whl_bytes) + MARGIN)) -gt $LIMIT ]; then
    pack "${files[@]}"
  fi
  if [ $((TREE + $(whl_bytes) + MARGIN)) -gt $LIMIT ]; then
    rm -f .whl/shared-fixtures.tar.xz
    echo "note: the AnomalyCLIP fixture does not fit; its GPU tests will skip on the device"
  else
    echo "fixtures: $(tar -tJf .whl/shared-fixtures.tar.xz | tr '\n' ' ')($(($(stat -c %s .whl/shared-fixtures.tar.xz) >> 10)) KiB)"
  fi
elif [ "$NVDEC" = 0 ]; then
  echo "note: $SHARED/fixtures/anomalyclip not found; no fixture carried"
fi

awk -v w="$(whl_bytes)" -v t="$TREE" 'BEGIN { printf ".whl/: %.1f MiB; with the working tree (%.1f MiB): %.1f MiB of the 64 MiB limit\n", w / 2^20, t / 2^20, (w + t) / 2^20 }'
