"""Text in and out of models: tokenization, perplexity, generation and retrieval."""
