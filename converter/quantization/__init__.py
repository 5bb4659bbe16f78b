"""Weights as Core ML's blockwise constants: searched int4/int8 blocks, written lazily."""
