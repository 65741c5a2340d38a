#!/usr/bin/env bash
# Pack what a GPU machine without network needs to run the avatar stages and benchmarks into
# `.device/` (git-ignored, ~30 MB): anny's code and its compact model build (the ~800 MB cache
# holds a 51 MB compact file that is all `Anny()` reads; xz-compressed to ~24 MB), and roma.
# anny runs without warp-lang there (its dense LBS fallback), and the precompiled gsplat
# wheel travels in wheels/. On the GPU machine, `source tools/device_setup.sh` unpacks it.
#   bash tools/device_bundle.sh          # after `make install` and one anny build (make demo)
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
site=$($py -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cache=$($py -c "from persona.cache import configure_caches; print(configure_caches()['ANNY_CACHE_DIR'])")
compact=$(ls "$cache"/v*/build_compact_model_data_*.safetensors | head -1)
rm -rf .device && mkdir -p .device/site .device/anny_cache
cp -r "$site/anny" "$site/roma" "$site"/anny-*.dist-info "$site"/roma-*.dist-info .device/site/
# anny reads only its keypoint regressors at run time once the compact build exists.
find .device/site/anny/data -mindepth 1 -maxdepth 1 ! -name keypoints -exec rm -rf {} +
rm -rf .device/site/anny/examples
find .device -name __pycache__ -prune -exec rm -rf {} +
version=$(basename "$(dirname "$compact")")
xz -T0 -6 -c "$compact" > ".device/anny_cache/$version--$(basename "$compact").xz"
du -sh .device
