# Build, test and demo entry points. GNU make; works as root or as a sudoer on a fresh Debian 12 / Ubuntu.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: the appliance alone (what `make demo` needs), then the test extra on top (what `make test` needs).
APP_STAMP := $(VENV)/.installed-appliance
STAMP := $(VENV)/.installed
# pytest workers for `make test` (pytest-xdist, one module per worker at a time). One process by default: on the
# 2-core CI box two workers were slower (31-33 min against ~20 min serial for a similar suite): most tests start
# appliances, hubs, brokers and browsers, which then fight for the same two cores. TEST_WORKERS=2 to try again.
TEST_WORKERS ?= 0
# ESPHome pins paho-mqtt 1.x, zeroconf and uvicorn versions that clash with the appliance's: its own venv.
ESPHOME_VENV ?= .venv-esphome
ESPHOME_VERSION := 2026.6.5
ESPHOME_STAMP := $(ESPHOME_VENV)/.installed-$(ESPHOME_VERSION)
# semgrep pins click/opentelemetry versions that clash with the app's (typer): its own venv too.
SEMGREP_VENV ?= .venv-semgrep
SEMGREP_VERSION := 1.185.0
SEMGREP_STAMP := $(SEMGREP_VENV)/.installed-$(SEMGREP_VERSION)
HOST ?= 0.0.0.0
PORT ?= 8080
DEMO_DIR ?= .demo-data

# `sudo` only when not already root.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_ENV := DEBIAN_FRONTEND=noninteractive
APT_INSTALL := $(SUDO) env $(APT_ENV) apt-get install -y --no-install-recommends
# `apt-get update` runs at most once per make run: a marker shared with sub-makes through the environment.
ifndef QMS_APT_MARKER
QMS_APT_MARKER := $(shell mktemp -u /tmp/qms-apt-updated.XXXXXXXX)
endif
export QMS_APT_MARKER
APT_UPDATE_ONCE := [ -e "$$QMS_APT_MARKER" ] || { $(SUDO) env $(APT_ENV) apt-get update && touch "$$QMS_APT_MARKER"; }

# package:command — a package counts as present if the command is on PATH or dpkg knows the package.
SYSTEM_PKGS := mosquitto:mosquitto chromium:chromium sox:sox espeak-ng:espeak-ng sqlite3:sqlite3 alsa-utils:aplay iproute2:ip postgresql:pg_ctlcluster xmlsec1:xmlsec1 prometheus:promtool libnss3-tools:certutil

.PHONY: help venv appliance-venv system-deps lint security fmt test bench demo clean image image-deps image-test ansible-test wheel

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

venv: $(STAMP) $(ESPHOME_STAMP) $(SEMGREP_STAMP) ## create .venv (qms + test extra), .venv-esphome, .venv-semgrep

appliance-venv: $(APP_STAMP) ## create .venv with the appliance only (no test tools, no ESPHome): what `make demo` needs

$(APP_STAMP): pyproject.toml
	@echo "==> venv: $(VENV) (the appliance)"
	@if [ ! -x "$(PY)" ]; then \
	  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv "$(VENV)" >/dev/null 2>&1; then \
	    rm -rf "$(VENV)"; \
	    echo "==> installing python3-venv (python3 -m venv is unavailable)"; \
	    $(APT_UPDATE_ONCE); \
	    $(APT_INSTALL) python3 python3-venv; \
	    python3 -m venv "$(VENV)"; \
	  fi; \
	fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch "$@"

$(STAMP): $(APP_STAMP)
	@echo "==> venv: $(VENV) (the test extra)"
	$(PY) -m pip install -q -e '.[test]'
	@touch "$@"

$(ESPHOME_STAMP): | $(STAMP)
	@echo "==> esphome $(ESPHOME_VERSION) in $(ESPHOME_VENV) (validates firmware-configs/)"
	[ -x "$(ESPHOME_VENV)/bin/python" ] || python3 -m venv "$(ESPHOME_VENV)"
	$(ESPHOME_VENV)/bin/python -m pip install -q "esphome==$(ESPHOME_VERSION)"
	@touch "$@"

$(SEMGREP_STAMP): | $(STAMP)
	@echo "==> semgrep $(SEMGREP_VERSION) in $(SEMGREP_VENV) (make security)"
	[ -x "$(SEMGREP_VENV)/bin/python" ] || python3 -m venv "$(SEMGREP_VENV)"
	$(SEMGREP_VENV)/bin/python -m pip install -q "semgrep==$(SEMGREP_VERSION)"
	@touch "$@"

system-deps: ## install Debian packages the tests need (only the missing ones)
	@missing=(); \
	for spec in $(SYSTEM_PKGS); do \
	  pkg="$${spec%%:*}"; cmd="$${spec#*:}"; \
	  if command -v "$$cmd" >/dev/null 2>&1 || dpkg -s "$$pkg" >/dev/null 2>&1; then continue; fi; \
	  missing+=("$$pkg"); \
	done; \
	if [ "$${#missing[@]}" -eq 0 ]; then echo "==> system-deps: all present"; exit 0; fi; \
	echo "==> system-deps: installing $${missing[*]}"; \
	$(APT_UPDATE_ONCE); \
	$(APT_INSTALL) "$${missing[@]}"; \
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && [[ " $${missing[*]} " == *" mosquitto "* ]]; then \
	  echo "==> stopping the packaged mosquitto service (tests start their own brokers)"; \
	  $(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true; \
	fi

lint: ## ruff check, ruff format --check, mypy
	@echo "==> lint: ruff check"
	$(VENV)/bin/ruff check .
	@echo "==> lint: ruff format --check"
	$(VENV)/bin/ruff format --check .
	@echo "==> lint: mypy"
	$(VENV)/bin/mypy

security: $(SEMGREP_STAMP) ## bandit, semgrep (rules in ops/semgrep, offline), SBOM (build/sbom.json), pip-audit where reachable
	@echo "==> security: bandit"
	$(VENV)/bin/bandit -q -c pyproject.toml -r edge cloud sync
	@echo "==> security: semgrep (ops/semgrep, offline, no metrics)"
	$(SEMGREP_VENV)/bin/semgrep scan --config ops/semgrep --metrics=off --disable-version-check --error --quiet edge cloud sync
	$(SEMGREP_VENV)/bin/semgrep scan --test --metrics=off --disable-version-check --quiet ops/semgrep
	@echo "==> security: SBOM (CycloneDX) -> build/sbom.json"
	@mkdir -p build
	$(VENV)/bin/cyclonedx-py environment --pyproject pyproject.toml --output-reproducible --no-validate --of JSON \
	  -o build/sbom.json $(PY)
	@echo "==> security: pip-audit (never fails for an unreachable database; says NOT AUDITED)"
	$(PY) ops/security/audit_deps.py

fmt: ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: venv system-deps ## lint, then the whole test suite (benchmarks excluded)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory security
	@echo "==> test: pytest"
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=40

bench: venv ## run the benchmarks in tests/bench (they print their figures)
	@echo "==> bench: pytest tests/bench"
	$(PY) -m pytest tests/bench -q -s -p no:cacheprovider --override-ini addopts=

demo: $(APP_STAMP) ## start the appliance with a demo branch (HOST=, PORT= to override); installs the appliance only
	$(VENV)/bin/qms-edge demo --data-dir $(DEMO_DIR) --host $(HOST) --port $(PORT)

# The appliance image (images/README.md): slow, cached under $(QMS_IMAGE_CACHE), never part of `make test`.
QMS_IMAGE_CACHE ?= /var/cache/qms-image
QMS_IMAGE_OUT ?= build/image
export QMS_IMAGE_CACHE QMS_IMAGE_OUT
IMAGE_PKGS := mmdebstrap qemu-user-static binfmt-support arch-test qemu-system-arm dosfstools mtools fdisk e2fsprogs

image-deps:
	@missing=(); for pkg in $(IMAGE_PKGS); do dpkg -s "$$pkg" >/dev/null 2>&1 || missing+=("$$pkg"); done; \
	if [ "$${#missing[@]}" -gt 0 ]; then $(APT_UPDATE_ONCE); $(APT_INSTALL) "$${missing[@]}"; fi
	@mountpoint -q /proc/sys/fs/binfmt_misc || $(SUDO) mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	@[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || $(SUDO) update-binfmts --enable qemu-aarch64

image: $(APP_STAMP) image-deps ## build the appliance SD-card image (Debian arm64) into $(QMS_IMAGE_OUT); base rootfs cached
	$(SUDO) env QMS_IMAGE_CACHE=$(QMS_IMAGE_CACHE) QMS_IMAGE_OUT=$(QMS_IMAGE_OUT) PYTHON=$(PY) images/build.sh

image-test: $(STAMP) image-deps ## boot the image under QEMU (TCG): multi-user.target, /api/v1/health, first-boot pairing
	QMS_IMAGE_TEST=1 $(PY) -m pytest tests/images/test_boot.py -q -s -p no:cacheprovider --override-ini addopts=

wheel: $(APP_STAMP) ## build this checkout's wheel into build/wheels (what ansible/cloud-hub.yml installs)
	$(PY) -m pip wheel -q --no-deps -w build/wheels .

ansible-test: $(STAMP) image-deps ## the appliance playbook against the cached base rootfs (chroot connection), twice
	QMS_ANSIBLE_CHROOT_TEST=1 $(PY) -m pytest tests/images/test_ansible_chroot.py -q -s -p no:cacheprovider --override-ini addopts=

clean: ## remove demo data and tool caches
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	rm -rf ./*.egg-info
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
