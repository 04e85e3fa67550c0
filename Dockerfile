FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir 'uv>=0.5,<1'
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY domain domain
COPY application application
COPY projections projections
COPY interfaces interfaces
COPY workers workers
COPY sandbox sandbox
RUN uv sync --frozen --no-dev
RUN useradd --create-home kairos
USER kairos
ENV PATH="/app/.venv/bin:$PATH" KAIROS_HOST=0.0.0.0
EXPOSE 8000
CMD ["kairos", "api"]
