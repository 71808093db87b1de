"""Exceptions raised by FairFL.

Every error the package raises derives from :class:`FairFLError`. Subclasses also derive
from the matching built-in, so callers can catch either::

    FairFLError
    ├── ConfigError(FairFLError, ValueError)        bad settings or arguments
    ├── ChainError(FairFLError, RuntimeError)       talking to the ledger failed
    │   ├── DeploymentNotFoundError(ChainError, FileNotFoundError)
    │   └── ContractRevertError(ChainError)          a contract rejected a transaction
    └── StorageError(FairFLError, IOError)          IPFS / content store problems
"""

from __future__ import annotations


class FairFLError(Exception):
    """Base class of every FairFL error."""


class ConfigError(FairFLError, ValueError):
    """A setting or argument is invalid; the message says which and how to fix it."""


class ChainError(FairFLError, RuntimeError):
    """The chain could not be reached or did not do what was asked."""


class DeploymentNotFoundError(ChainError, FileNotFoundError):
    """No deployment record for the selected network."""


class ContractRevertError(ChainError):
    """A contract call reverted; ``error_name`` is the custom error, if known."""

    def __init__(self, message: str, error_name: str | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name


class StorageError(FairFLError, IOError):
    """Content could not be stored, found or verified."""
