"""The HTTP server beside the engine: OpenAI's and Ollama's dialects on 127.0.0.1."""
