"""Web search for Anthropic's `web_search` server tool: configuration, search backends, the gateway-run loop."""
