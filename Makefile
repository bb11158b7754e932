# The two front-door commands (README.md): `make run` and `make test`.
# Both install what is missing (tools/bootstrap.sh) and then do their job.
VENV := .venv
APP  := $(VENV)/bin/appliance
DATA := ./var

.PHONY: run test bootstrap bootstrap-test bench clean

bootstrap:
	@tools/bootstrap.sh run

bootstrap-test:
	@tools/bootstrap.sh test

run: bootstrap
	@tools/demo.sh $(DATA)

# the whole run is bounded too (CI allows 90 minutes): a hang ends as a failure
TEST_LIMIT ?= 80m
test: bootstrap-test
	timeout -k 60 $(TEST_LIMIT) $(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: bootstrap
	$(APP) bench dsp

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache

# The appliance image (image/README.md). Not part of `make test`: a build takes
# minutes, needs root and Debian's mirror. Trees and images go to IMAGE_DIR.
IMAGE_DIR ?= /tmp/appliance-image
.PHONY: image image-check image-boot image-clean

image:          # arm64 SD-card image for a Raspberry Pi 4 (disk.img + update/)
	@image/deps.sh arm64
	image/build.sh --arch arm64 --out $(IMAGE_DIR)/arm64 --disk

image-check:    # the same recipe for amd64 into a directory tree, then its checks
	@image/deps.sh amd64
	image/build.sh --arch amd64 --out $(IMAGE_DIR)/amd64
	image/check.sh $(IMAGE_DIR)/amd64

image-boot:     # boot image-check's tree under qemu, reach `appliance console`
	@image/deps.sh boot
	python3 image/boot.py $(IMAGE_DIR)/amd64

image-clean:
	rm -rf $(IMAGE_DIR)
