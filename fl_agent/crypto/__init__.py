"""Key material of FairFL: X25519 keys derived from a wallet signature (:mod:`.wallet_keys`).

The sealed-box and content encryption still live in :mod:`fl_agent.market.sealing`.
"""
