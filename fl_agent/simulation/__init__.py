"""``fl-agent simulate``: many agents, attacks, a report and plots, on a real local chain.

* :mod:`.attacks` — the attacks malicious participants run (pure functions).
* :mod:`.runner`  — :class:`SimulationConfig` and :func:`run_simulation` (the wiring).
* :mod:`.report`  — the JSON report and its PNG plots.
"""
