"""Models on disk and on the Hub: the library, Hub downloads, the Model tab."""
