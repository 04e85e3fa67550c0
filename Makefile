# The front door. A fresh machine needs only python3 and make: uv is bootstrapped here.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test unit integration e2e lint format typecheck bench clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet 'uv>=0.5,<1'

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

# A real S3-compatible server (LocalStack's S3) for the storage tests, in its own environment.
tools/s3server/.venv/.synced: tools/s3server/pyproject.toml tools/s3server/uv.lock | $(UV)
	$(UV) sync --frozen --project tools/s3server
	@touch $@

run: .venv/.synced  ## everything on this machine: embedded PostgreSQL, API, sandbox platforms
	$(UV) run kairos up

test: .venv/.synced tools/s3server/.venv/.synced  ## the whole suite (PostgreSQL: $$KAIROS_DATABASE_URL, else embedded)
	$(UV) run pytest

unit: .venv/.synced
	$(UV) run pytest tests/unit

integration: .venv/.synced tools/s3server/.venv/.synced
	$(UV) run pytest tests/integration

e2e: .venv/.synced
	$(UV) run pytest tests/e2e

lint: .venv/.synced  ## ruff, mypy --strict, and the import contracts between layers
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy .
	$(UV) run lint-imports

format: .venv/.synced
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: .venv/.synced tools/s3server/.venv/.synced  ## prints figures; never part of pass/fail
	$(UV) run python -m bench
	$(UV) run python -m bench.publishing
	$(UV) run python -m bench.media
	$(UV) run python -m bench.analytics

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
