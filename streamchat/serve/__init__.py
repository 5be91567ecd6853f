"""`streamchat serve`: the same streams over HTTP (SSE, OpenAI-compatible, WebSocket) and a web page.

Needs the `serve` extra (FastAPI, uvicorn); `streamchat serve` says how to install it.
"""
