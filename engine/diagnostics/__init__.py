"""`coreml-chat --doctor`'s measurements: this machine, and a model per runtime and compute unit.

``machine`` (versions, memory, the compiled cache, the process's physical footprint), ``fidelity``
(the fixed prose text and the teacher-forced comparison), ``probe`` (one model on one runtime and
compute unit, in a process of its own), ``report`` (the JSON report's rows and the readable
summary). The orchestration, which also prepares the demo model through the converter, is
``app/doctor.py``.
"""
