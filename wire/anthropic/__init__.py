"""Anthropic's Messages API wire format: errors, usage, answers and events, and the translation to and from
OpenAI's Chat Completions (pure: documents and bytes in, documents and bytes out)."""
