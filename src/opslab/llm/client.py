"""A minimal OpenAI-compatible chat-completions client (any endpoint speaking that protocol)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from opslab.errors import Unavailable

if TYPE_CHECKING:
    from opslab.config import Settings


class ChatClient:
    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatClient | None:
        """The model the settings name (``Settings.llm_endpoint``), or None when the LLM is off."""
        endpoint = settings.llm_endpoint()
        if endpoint is None:
            return None
        return cls(
            endpoint.base_url,
            model=endpoint.model,
            api_key=endpoint.api_key,
            timeout_s=settings.llm_timeout_s,
        )

    def complete(
        self, messages: list[dict[str, str]], *, temperature: float = 0.0, json_mode: bool = True
    ) -> str:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            r = self.http.post("/chat/completions", json=body)
            r.raise_for_status()
            content = r.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise Unavailable(f"LLM endpoint failed: {exc}") from exc
        if not isinstance(content, str):
            raise Unavailable("LLM endpoint returned no text")
        return content

    def close(self) -> None:
        self.http.close()
