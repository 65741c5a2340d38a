# Set-up and everyday commands. `make demo` and `make test` install what they need.
# Heavy caches stay outside the clone: pip's (~/.cache/pip) and the project's
# (PERSONA_CACHE_DIR, default ~/.cache/persona: anny's ~800 MB build, warp kernels,
# Hugging Face, matplotlib, gradio temp), so a fresh clone reuses them when present.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= preview
EXAMPLE ?= examples/person_half.png

.PHONY: install demo test app bench clean

install: $(VENV)/.installed

# The Space installs requirements.txt with its own torch (2.8-2.11, CUDA); here the CPU
# build of torch 2.13.0 from requirements-local.txt replaces that line.
$(VENV)/.installed: requirements.txt requirements-local.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	sed '/^torch==/d' requirements.txt > $(VENV)/requirements-without-torch.txt
	$(PY) -m pip install -q -r requirements-local.txt -r $(VENV)/requirements-without-torch.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: install
	$(PY) -m persona make $(EXAMPLE) -o outputs/demo --preset $(PRESET)

test: install
	$(PY) -m pytest -q

app: install
	$(PY) app.py

bench: install
	$(PY) -m persona bench cpu

clean:
	rm -rf outputs .pytest_cache
