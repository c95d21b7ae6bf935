# The two README commands: `make run` and `make test`. Everything installs into .venv, but for
# the runtime tier of the tests: `make test-runtime` runs it in .venv-runtime, without torch.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
RT_VENV  := .venv-runtime
RT_BIN   := $(RT_VENV)/bin
DATA     := var/demo
CATEGORY ?= wood
RUN_DIR  := var/runs/$(CATEGORY)
PORT     ?= 8080
SOURCE   ?= file://$(abspath $(DATA))/video/$(CATEGORY)_line.avi?loop=1

.PHONY: run test test-runtime install install-test system-test-deps demo model bench clean

run: $(RUN_DIR)/.complete
	@echo "edge-ad: serving on http://127.0.0.1:$(PORT)  (dashboard /, API /v1/result, metrics /metrics; Ctrl-C stops)"
	@[ -n "$$EDGE_AD_TOKEN" ] || echo "edge-ad: control endpoints are off; to enable them: EDGE_AD_TOKEN=\$$(openssl rand -hex 24) make run"
	@[ -n "$$EDGE_AD_LINE_TOKEN" ] || echo "edge-ad: line endpoints (trigger, push, infer) are open to anyone on the port; to require a token: EDGE_AD_LINE_TOKEN=\$$(openssl rand -hex 24) make run"
	$(BIN)/edge-ad serve --model $(RUN_DIR)/bundle --source "$(SOURCE)" --port $(PORT) --journal var/journal.sqlite --evidence var/evidence

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

$(VENV)/.created:
	@# Debian's own python3 ships venv separately (python3-venv): install it when missing.
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	@touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.created
	$(BIN)/pip install --progress-bar on -e '.[runtime,export,plc]'
	@touch $@

# PyGObject builds against the system's GObject introspection, so apt comes first
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-run | system-test-deps
	$(BIN)/pip install --progress-bar on -e '.[runtime,export,gst,trt,plc,dev]'
	@touch $@

demo: $(DATA)/.complete
$(DATA)/.complete: $(VENV)/.installed-run
	$(BIN)/edge-ad demo-data $(DATA)
	@touch $@

model: $(RUN_DIR)/.complete
$(RUN_DIR)/.complete: $(DATA)/.complete
	# the demo camera is untriggered and sees each part in about 6 frames, and a part is rejected
	# when any of them is NG: per part, the false-reject rate is ~6x the per-image target
	$(BIN)/edge-ad train --model knnplace --target-fpr 0.002 --data $(DATA)/$(CATEGORY) --out $(RUN_DIR)
	@touch $@

# Real components the integration tests start: Prometheus (scrapes the service; promtool checks
# deploy/), Chromium (renders the dashboard), Mosquitto (the MQTT output's broker), GStreamer with its RTSP server (cameras), what
# PyGObject needs to build, and systemd-analyze (checks the unit). Installed with apt when missing.
SYSTEM_TEST_PACKAGES := prometheus chromium mosquitto \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 \
	libgirepository1.0-dev libcairo2-dev pkg-config gcc python3-dev systemd
system-test-deps:
	@missing=$$(for p in $(SYSTEM_TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing" $$missing "with apt-get (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The runtime tier (tests/tiers.py) in a venv with what the Jetson image installs: the runtime,
# TensorRT's helpers (onnx, cuda-python), PyGObject, and pytest; never torch or export's extras.
$(RT_VENV)/.created:
	$(PYTHON) -m venv $(RT_VENV) || { rm -rf $(RT_VENV); apt-get install -y python3-venv && $(PYTHON) -m venv $(RT_VENV); }
	@touch $@

$(RT_VENV)/.installed-runtime-tier: pyproject.toml $(RT_VENV)/.created | system-test-deps
	$(RT_BIN)/pip install --progress-bar on -e '.[runtime,trt,gst,plc,selftest]'
	@touch $@

test-runtime: $(RT_VENV)/.installed-runtime-tier system-test-deps
	@# the tier's conftest blocks torch and export/ in its own process; here: none is installed
	@$(RT_BIN)/python -c 'import importlib.util as u, sys; bad = [m for m in ("torch", "scipy", "sklearn") if u.find_spec(m)]; sys.exit(f"$(RT_VENV) has {bad}: the runtime tier must run without them" if bad else 0)'
	$(RT_BIN)/python -m pytest --runtime-tier

test: test-runtime $(VENV)/.installed-test system-test-deps
	$(BIN)/python -m pytest

bench: $(RUN_DIR)/.complete
	$(BIN)/edge-ad bench $(RUN_DIR)/bundle --source "dir://$(abspath $(DATA))/$(CATEGORY)/test/good" --json var/bench.json

clean:
	rm -rf var
