"""Any OpenAI-compatible chat-completions endpoint, through the ``openai`` SDK: retries with backoff on
connection errors, 429 and 5xx (``max_retries``), a timeout per call, and structured output where the
endpoint takes it (a JSON schema; JSON mode where it does not).

The SDK is imported when a client is made (it takes half a second): a command that calls no model never
loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opslab.errors import Unavailable

if TYPE_CHECKING:
    from opslab.config import Settings

NO_KEY = "unused"  # the SDK needs a key; an endpoint without authentication ignores it


class ChatClient:
    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        max_retries: int = 2,
    ) -> None:
        import openai

        self.model = model
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=base_url.rstrip("/"),
            api_key=api_key or NO_KEY,
            timeout=timeout_s,
            max_retries=max_retries,
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
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.0,
        json_mode: bool = True,
        schema: dict[str, Any] | None = None,
    ) -> str:
        """The assistant's text. With ``schema`` (a JSON Schema), structured output that the endpoint
        holds to it; an endpoint that refuses structured output is asked again in JSON mode."""
        formats: list[dict[str, Any] | None] = []
        if schema is not None:
            formats.append({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
        formats.append({"type": "json_object"} if json_mode or schema is not None else None)
        last: Exception | None = None
        for response_format in formats:
            try:
                params: dict[str, Any] = {
                    "model": self.model,
                    "messages": messages,
                    "temperature": temperature,
                }
                if response_format:
                    params["response_format"] = response_format
                answer = self._client.chat.completions.create(**params)
            except self._openai.BadRequestError as exc:  # no structured output here: the next format
                last = exc
                continue
            except self._openai.OpenAIError as exc:
                raise Unavailable(f"LLM endpoint failed: {exc}") from exc
            content = answer.choices[0].message.content if answer.choices else None
            if not isinstance(content, str):
                raise Unavailable("LLM endpoint returned no text")
            return content
        raise Unavailable(f"LLM endpoint refused the request: {last}") from last

    def close(self) -> None:
        self._client.close()
