"""The intake ceiling: a bare FastAPI POST endpoint under dealreg's own uvicorn settings.

    python tests/bench/bare_api.py PORT

Same server options as `dealreg dev`/`serve` (dealreg.cli.server_options: uvloop, httptools,
no access log, same concurrency limit); the endpoint parses the JSON body into a dict and
answers 201 with a small JSON document, nothing else. What `POST /v1/registrations`
achieves divided by what this achieves (same client, same run) is intake / ceiling.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn
from fastapi import FastAPI

from dealreg.cli import server_options
from shared.settings import Settings

app = FastAPI()


@app.post("/v1/registrations", status_code=201)
async def register(body: dict[str, Any]) -> dict[str, str]:
    return {"id": "reg_bare", "status": "pending"}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    settings = Settings(port=int(sys.argv[1]))
    uvicorn.run(app, host="127.0.0.1", port=settings.port, **server_options(settings))
