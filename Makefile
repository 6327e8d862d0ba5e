# Common commands. Everything real lives in the scripts these call.
.PHONY: test unit molecule sanity lint demo clean build

# The test command's virtualenv (tests/run.sh makes it); its ansible-galaxy when there is one, else PATH's.
VENV ?= .venv
ANSIBLE_GALAXY ?= $(if $(wildcard $(VENV)/bin/ansible-galaxy),$(VENV)/bin/ansible-galaxy,ansible-galaxy)

test:            ## Everything, as CI runs it (installs what it needs; run as root)
	bash tests/run.sh

unit:            ## Engine and provider unit tests only (fast, no daemons)
	.venv/bin/python -m pytest tests/unit

molecule:        ## The workflow scenarios on every provider (libvirt needs root)
	mkdir -p build/collections/ansible_collections/prechange
	ln -sfn $(CURDIR) build/collections/ansible_collections/prechange/snapshots
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/build/collections PATH=$(CURDIR)/.venv/bin:$$PATH molecule test --all

sanity:          ## ansible-test sanity on a copy laid out as ansible_collections/prechange/snapshots
	PYTHON=.venv/bin/python bash tests/sanity/run.sh

lint:            ## ansible-lint, production profile
	.venv/bin/ansible-lint --profile production

demo:            ## The main job: the maintenance workflow on a local libvirtd it starts itself
	bash demo/run.sh

build:           ## Build the collection artifact into build/dist
	$(ANSIBLE_GALAXY) collection build --output-path build/dist --force

clean:
	rm -rf build tests/output .pytest_cache
