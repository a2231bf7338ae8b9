"""A real chat-completions HTTP server with scripted answers, for tests and the demo."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Script = Callable[[list[dict[str, Any]]], str | None]


def word_count(text: object) -> int:
    return len(str(text or "").split())


def usage_of(messages: list[dict[str, Any]], content: str) -> dict[str, int]:
    """The usage the fake reports, as a real endpoint does: words stand for tokens (prompt: every
    message's content; completion: the answer)."""
    prompt = sum(word_count(m.get("content")) for m in messages)
    completion = word_count(content)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def fake_chat_app(script: Script, *, delay_s: float = 0.0, structured: bool = True) -> FastAPI:
    """``script(messages)`` returns the assistant's content, or None for a 500 response. Each answer
    carries ``usage`` (``usage_of``), so instrumentation that records token counts has some to record.
    ``structured=False`` is an endpoint without structured output: a JSON-schema response format is a
    400, as such servers answer."""
    app = FastAPI()
    app.state.requests = []

    @app.post("/chat/completions")
    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        body = await request.json()
        app.state.requests.append(body)
        if delay_s:
            await asyncio.sleep(delay_s)
        if not structured and (body.get("response_format") or {}).get("type") == "json_schema":
            message = "response_format json_schema is not supported"
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, 400)
        content = script(body.get("messages", []))
        if content is None:
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=500)
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": usage_of(body.get("messages", []), content),
            }
        )

    return app


def evidence_ids_in_prompt(messages: list[dict[str, Any]]) -> list[str]:
    """The evidence ids the RCA prompt offered (so a script can cite real ones and invent others)."""
    for m in messages:
        if m.get("role") == "user":
            try:
                data = json.loads(m["content"])
            except (ValueError, TypeError):
                continue
            return [e["evidence_id"] for e in data.get("evidence_index", [])]
    return []
