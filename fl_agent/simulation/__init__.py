"""``fl-agent simulate``: many agents, attacks, a report and plots, on a real local chain.

* :mod:`.attacks` — the attacks malicious participants run (pure functions).
* :mod:`.runner`  — :class:`SimulationConfig` and :func:`run_simulation` (the wiring).
* :mod:`.report`  — the JSON report and its PNG plots.
"""

#: How far apart the simulated devices' speeds are by default
#: (``SimulationConfig.device_spread``, ``fl-agent simulate --device-spread``).
DEFAULT_DEVICE_SPREAD = 4.0

#: What ``fl-agent bench`` runs by default: every attack, then the named variants
#: (``config.ATTACK_VARIANTS``) but ``alie-jitter`` and ``alie-jitter-1%``, rule R49's
#: adaptive attackers, and ``gaussian-every-2``, rule R52's (a task that prunes).
BENCH_ATTACKS = ("none", "label_flip", "sign_flip", "scaling", "gaussian", "backdoor",
                 "free_rider", "noisy_free_rider", "targeted_flip", "alie", "ipm", "minmax",
                 "backdoor-centre", "backdoor-out-of-range", "backdoor-centre-10%",
                 "backdoor-centre-20%", "label_flip-every-2", "sign_flip-every-2",
                 "alie-every-2")
