"""Text in and out of a model: its tokenizer, tokenizer files, and its chat template in a sandbox."""
