# dealreg services image: `docker build -t dealreg .`, then `docker run dealreg serve registration`.
# deploy/docker-compose.yml runs the distributed services from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY dealreg ./dealreg
COPY shared ./shared
COPY services ./services
RUN pip install . \
    && useradd --create-home --uid 10001 dealreg

USER dealreg
ENTRYPOINT ["dealreg"]
CMD ["--help"]
