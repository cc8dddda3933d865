# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint audit

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[test,deploy]"
	touch $(STAMP)

# A development server on SQLite: migrates, creates the first administrator (its login is
# printed once), then runs the web server and the worker until Ctrl-C. With DEMO=1 (the
# default) it also runs the EWS simulator's demo mailboxes and a demo organization using them,
# and the Raynet simulator with a second demo organization syncing with it (SYNC_DEMO).
DEMO ?= 1
DEMO_FLAG := $(if $(filter 1 true yes on,$(DEMO)),--demo-mailbox,)
DEMO_KINDS := $(if $(DEMO_FLAG),SYNC_DEMO=$${SYNC_DEMO:-true},)
comma := ,
# The demo mailbox server listens on this machine: the operator's switch allows loopback for
# it (added to whatever MAILBOX_ALLOWED_NETWORKS the environment holds).
DEMO_NETWORK := $(if $(DEMO_FLAG),MAILBOX_ALLOWED_NETWORKS=$${MAILBOX_ALLOWED_NETWORKS:+$$MAILBOX_ALLOWED_NETWORKS$(comma)}127.0.0.1/32,)
# The demo's attachment share, a folder under var/: the server may write there (added to
# whatever ATTACHMENT_ROOTS the environment holds) and setup_demo approves it for the demo
# organization, so "Save attachments" works out of the box.
DEMO_SHARE := $(abspath $(or $(VAR_DIR),var)/demo-share)
DEMO_ROOTS := $(if $(DEMO_FLAG),ATTACHMENT_ROOTS="$${ATTACHMENT_ROOTS:+$$ATTACHMENT_ROOTS$(comma)}$(DEMO_SHARE)",)
run: setup
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --no-input
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py bootstrap_admin
	$(if $(DEMO_FLAG),DEBUG=$${DEBUG:-true} $(DEMO_KINDS) $(DEMO_ROOTS) $(BIN)/python manage.py setup_demo --share "$(DEMO_SHARE)")
	DEBUG=$${DEBUG:-true} $(DEMO_KINDS) $(DEMO_NETWORK) $(DEMO_ROOTS) $(BIN)/python manage.py serve $(DEMO_FLAG)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

# Known vulnerabilities in the installed dependencies (pip-audit, in a venv of its own).
audit: setup
	.ci/audit
