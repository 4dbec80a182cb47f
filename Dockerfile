# The patentmatch application: API, dashboard, ingest and indexing jobs.
# Build: docker build -t patentmatch .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PATENTMATCH_CACHE_DIR=/data \
    PATENTMATCH_API_HOST=0.0.0.0

RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The CPU build of torch is a fraction of the size of the default CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.2"

COPY pyproject.toml README.md ./
COPY patentmatch ./patentmatch
COPY ingest ./ingest
COPY encoder ./encoder
COPY training ./training
COPY search_api ./search_api
COPY dashboard ./dashboard
COPY mappings ./mappings
RUN pip install .

RUN useradd --system --create-home --home-dir /home/patentmatch patentmatch \
    && mkdir -p /data && chown patentmatch /data
USER patentmatch
VOLUME ["/data"]
EXPOSE 8080 8050

CMD ["patentmatch", "serve", "--host", "0.0.0.0", "--port", "8080"]
