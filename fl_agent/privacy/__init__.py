"""Privacy and ownership computations on models and updates (pure: no chain, no storage)."""
