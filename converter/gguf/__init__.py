"""GGUF sources: their quantized blocks carried over exactly."""
