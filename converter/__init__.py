"""Hugging Face Mistral/Llama (Hub id, local folder or GGUF file) to stateful Core ML packages."""
