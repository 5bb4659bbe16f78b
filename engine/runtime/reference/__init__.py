"""The reference runtime: a Core ML ML Program executed in NumPy, wherever Core ML cannot run.

Only ``engine.runtime.load_model`` imports it (through ``engine.runtime.reference.runtime``); importing this
package alone loads nothing.
"""
