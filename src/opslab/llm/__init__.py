"""Optional LLM access: an OpenAI-compatible client and a scripted fake server. Off unless configured."""

from opslab.llm.client import ChatClient

__all__ = ["ChatClient"]
