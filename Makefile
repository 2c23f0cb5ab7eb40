# napari-ian: the README's two commands are `make run` and `make test`.
# Each does its own set-up on a fresh machine: Qt's few system libraries (apt, when root on
# Debian/Ubuntu and they are missing), a virtual environment, a CPU build of torch, and the
# project in editable mode with PyQt5, OpenVINO (faster CPU inference) and the test tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# cpu: a ~200 MB CPU wheel; cuda: PyPI's default CUDA build (several GB). Auto: cuda only when
# an NVIDIA driver (nvidia-smi) is present.
TORCH_VARIANT ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
QT_BINDING ?= pyqt5
APT_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
	libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxkbcommon-x11-0 \
	libgl1 libegl1 libfontconfig1 libdbus-1-3 libglib2.0-0

.PHONY: run test setup sysdeps screenshot sample-data bench-gui bench-review clean

run: setup
	$(BIN)/python -m napari_ian

# two pytest-xdist workers, each test file on one worker (its module fixtures made once): on a
# 2-core machine the suite took 606 s instead of 818-912 s (BENCHMARKS.md, Test suite);
# TEST_WORKERS=0 runs it in this process
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

setup: $(VENV)/.installed

# apt only when root on a Debian/Ubuntu machine and something is missing
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then echo "apt: installing$$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi; \
	elif ! command -v Xvfb >/dev/null 2>&1; then \
		echo "note: Xvfb not found; the GUI tests need it (Debian/Ubuntu: sudo apt-get install $(APT_PACKAGES))"; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ "$(TORCH_VARIANT)" = cuda ]; then \
		$(BIN)/python -m pip install "torch==$(TORCH_VERSION)"; \
	else \
		$(BIN)/python -m pip install "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
		|| $(BIN)/python -m pip install "torch==$(TORCH_VERSION)" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/python -m pip install -e ".[$(QT_BINDING),openvino,testing]"
	touch $@

# the README screenshots (needs Xvfb): make run's window, then plain napari on a desktop and a
# laptop screen (docked from the Plugins menu, clicked through; it fails if a panel does not fit)
screenshot: setup
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m napari_ian --predict --screenshot docs/screenshot_main.png
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/plain_napari.py --shots docs --only reviewed
	xvfb-run -a -s "-screen 0 1366x768x24" $(BIN)/python docs/plain_napari.py --shots docs --only finetuning
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/screenshot_finetune.py docs/screenshot_finetune.png
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/screenshot_interactive.py docs/screenshot_interactive.png
	$(BIN)/python -m napari_ian.sample_data.montage --seed 0 --out docs/phantom_montage.png

# the pre-generated sample patient shipped in the package (File > Open Sample opens it at once);
# run after changing the phantom generator
sample-data: setup
	$(BIN)/python -m napari_ian._sample_data

# brush latency, GUI vs CLI prediction and memory on a full-size volume (needs Xvfb)
bench-gui: setup
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python bench/bench_gui.py

# review speed: per-slice recompute and stroke update, and each review action's GUI stall (needs Xvfb)
bench-review: setup
	$(BIN)/python bench/bench_review.py
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python bench/bench_review_gui.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
