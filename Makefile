# The few commands a person needs. `make run` and `make test` work on a
# fresh machine with only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The demo and the tests run with DEBUG on unless told otherwise; production
# sets DEBUG=0 and a SECRET_KEY (see README).
export DEBUG ?= 1

.PHONY: venv setup run test lint format bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

setup: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_data

run: setup
	$(PY) manage.py serve

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/dwvlist_bench).
# Figures are recorded in BENCHMARKS.md. Smaller runs: make bench SMTP_N=20000 ESP_N=100000 ANYMAIL_N=20000 IMPORT_ROWS=100000 SEND_REQUEST_N=20000 API_N=100000 SEARCH_READERS=200000 BOUNCE_N=2000 EVENTS_N=1000000
# The bounce bench starts a private Dovecot (dovecot-imapd, dovecot-pop3d) and needs root.
SMTP_N ?= 100000
ESP_N ?= 1000000
ANYMAIL_N ?= 100000
IMPORT_ROWS ?= 1000000
SEARCH_READERS ?= 1000000
STAFF_READERS ?= 1000000
SEND_REQUEST_N ?= 1000000
API_N ?= 1000000
BOUNCE_N ?= 10000
EVENTS_N ?= 10000000
bench: venv
	$(PY) -m bench --transport smtp -n $(SMTP_N)
	for key in rsa ed25519; do $(PY) -m bench --transport smtp -n $(SMTP_N) --dkim $$key || exit 1; done
	$(PY) -m bench.dkim_bench -n 3000
	$(PY) -m bench.bounce_bench -n $(BOUNCE_N)
	$(PY) -m bench --transport mailgun -n $(ESP_N)
	$(PY) -m bench.webhook_bench --events 20000
	$(PY) -m bench.events_admin_bench --events $(EVENTS_N)
	for esp in sendgrid brevo mailjet; do $(PY) -m bench --transport $$esp -n $(ANYMAIL_N) || exit 1; done
	$(PY) -m bench --transport postmark -n 20000
	$(PY) -m bench.import_bench --rows $(IMPORT_ROWS)
	$(PY) -m bench.search_bench --readers $(SEARCH_READERS)
	$(PY) -m bench.staff_bench --readers $(STAFF_READERS)
	$(PY) -m bench.send_request_bench -n $(SEND_REQUEST_N)
	$(PY) -m bench.api_bench --readers $(API_N)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
