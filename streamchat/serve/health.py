"""`GET /health`: the server is up, and the state of each route's deployments in this worker
(ok, or cooling down until when — with `--workers N`, `--state` or `--keys`, cooled down by any
worker or server on the state store; answers in flight; the last error, redacted).

Behind the same gate as every endpoint (Host, Origin, token): deployment names and upstream
errors are for the operator, not for any page that can reach the port.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request

from streamchat.routing import health
from streamchat.serve.state import serve_state

router = APIRouter()


@router.get("/health")
async def state(request: Request) -> dict[str, Any]:
    # the state is each worker's own (`--workers N`): the pid says whose
    return {"status": "ok", "pid": os.getpid(), "routes": health(serve_state(request).settings.routes)}
