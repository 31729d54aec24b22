"""messages-bridge: the Anthropic Messages API, fulfilled by the OpenAI Responses API."""

__version__ = "0.1.0"
