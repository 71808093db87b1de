"""Who can read what: sealed keys, wallet-derived keys and the task's encrypted models.

* :mod:`fl_agent.crypto.sealing` — AES-256-GCM content encryption and content keys sealed
  to an X25519 public key (ECIES style).
* :mod:`fl_agent.crypto.wallet_keys` — X25519 key pairs derived from a wallet's signature
  over a fixed message, so an account re-derives its key anywhere (browser or Python).
* :mod:`fl_agent.crypto.envelopes` — a task's models encrypted under its task key, updates
  sealed to the aggregator, and the keyring that hands the task key to the members.

Pure functions over bytes; no chain or store access here.
"""
