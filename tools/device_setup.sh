# Source on the GPU machine, in the repository root, after tools/device_bundle.sh ran here:
#   source tools/device_setup.sh
# Unpacks anny's compact model build into a cache folder and puts anny and roma on
# PYTHONPATH. gsplat needs nothing: the precompiled wheel in wheels/ is unpacked at first use
# (persona.avatar.gsplat_wheel), as on the Space.
export PERSONA_CACHE_DIR=${PERSONA_CACHE_DIR:-/tmp/persona-cache}
for f in .device/anny_cache/*.xz; do
  name=$(basename "$f" .xz)
  mkdir -p "$PERSONA_CACHE_DIR/anny/${name%%--*}"
  xz -dc "$f" > "$PERSONA_CACHE_DIR/anny/${name%%--*}/${name#*--}"
done
export PYTHONPATH=$PWD:$PWD/.device/site${PYTHONPATH:+:$PYTHONPATH}
