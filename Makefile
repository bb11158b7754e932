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

test: bootstrap-test
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: bootstrap
	$(APP) bench dsp

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache
