# One image for web, workers and beat. TORCH_SPEC picks the PyTorch build: the CUDA default for the
# GPU worker; `--build-arg TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"` for CPU only.
FROM python:3.11-slim

ARG TORCH_SPEC="torch>=2.4"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
RUN useradd --create-home --uid 1000 tldr && mkdir -p /data && chown tldr /data
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md ./
COPY shapeworld shapeworld
COPY reward reward
COPY annotator annotator
COPY config config
COPY templates templates
COPY manage.py ./
RUN pip install ".[s3]"
COPY static static

USER tldr
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.py"]
