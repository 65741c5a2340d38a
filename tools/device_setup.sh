# Source on the GPU machine, in the repository root, after tools/device_bundle.sh ran here:
#   source tools/device_setup.sh
# Installs the precompiled gsplat wheel, unpacks anny's compact model build into a cache
# folder and puts anny and roma on PYTHONPATH.
export PERSONA_CACHE_DIR=${PERSONA_CACHE_DIR:-/tmp/persona-cache}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site wheels/gsplat-*.whl || return 1
for f in .device/anny_cache/*.xz; do
  name=$(basename "$f" .xz)
  mkdir -p "$PERSONA_CACHE_DIR/anny/${name%%--*}"
  xz -dc "$f" > "$PERSONA_CACHE_DIR/anny/${name%%--*}/${name#*--}"
done
export PYTHONPATH=$PWD/.device/site:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
