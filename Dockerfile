# dealreg services image: `docker build -t dealreg .`, then `docker run dealreg serve registration`.
# deploy/docker-compose.yml runs the distributed services from it.

# The wheel, with `decide` and the account matching compiled by mypyc (setup.py's COMPILED,
# README "Compiled build"): built where a C compiler is, installed below without one.
FROM python:3.11 AS build
WORKDIR /src
COPY constraints ./constraints
RUN pip install --no-cache-dir -c constraints/lint.txt mypy "setuptools>=68" wheel
COPY pyproject.toml setup.py README.md ./
COPY dealreg ./dealreg
COPY shared ./shared
COPY services ./services
# mypyc type-checks against the dependencies (pydantic's mypy plugin): installed first.
RUN pip install --no-cache-dir . \
    && DEALREG_COMPILED=1 pip wheel --no-cache-dir --no-build-isolation --no-deps -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 dealreg

# Reachable from outside the container; `docker run -p 8080:8080 dealreg serve ...`.
ENV DEALREG_HOST=0.0.0.0 \
    DEALREG_PORT=8080
EXPOSE 8080
# Liveness without curl: the image has Python. Follows DEALREG_PORT if it is changed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DEALREG_PORT', '8080') + '/healthz', timeout=2)"]

USER dealreg
ENTRYPOINT ["dealreg"]
CMD ["--help"]
