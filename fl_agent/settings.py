"""FairFL settings: one pydantic-settings class, read from ``FAIRFL_*`` environment variables.

Command-line options override these; defaults describe the embedded set-up (``make chain``:
anvil on 127.0.0.1:8545 with its state in ``.fairfl/chain``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from fl_agent.chain.client import PROJECT_ROOT
from fl_agent.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAIRFL_", extra="ignore")

    network: str = Field(
        "ethereum:local:node",
        description="ape network choice; the default reaches the shared chain of `make chain`.",
    )
    rpc_host: str = Field("127.0.0.1", description="Host the local anvil listens on.")
    rpc_port: int = Field(8545, ge=1, le=65535, description="Port the local anvil listens on.")
    home: Path = Field(PROJECT_ROOT / ".fairfl", description="Local state: chain, store, cursors.")
    deployments: Path = Field(PROJECT_ROOT / "deployments", description="Deployment records.")
    public_rpc_url: str | None = Field(
        None, description="RPC URL that users' browsers reach (for their wallet and the app's "
        "dev accounts); default: the node the app itself reads.")
    confirmations: int = Field(0, ge=0, description="Blocks to wait before acting on an event.")
    ipfs: str | None = Field(
        None, description="Kubo RPC URL (e.g. http://127.0.0.1:5001); unset: the embedded store."
    )
    max_content_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="Largest file the store accepts or returns."
    )

    @property
    def chain_dir(self) -> Path:
        return self.home / "chain"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def keys_dir(self) -> Path:
        """Content keys of the models this machine listed (its key agent serves them)."""
        return self.home / "keys"

    @property
    def agents_dir(self) -> Path:
        """Event cursors of the agents run on this machine."""
        return self.home / "agents"

    @property
    def rpc_url(self) -> str:
        return f"http://{self.rpc_host}:{self.rpc_port}"


def get_settings() -> Settings:
    """The settings from the environment; a malformed ``FAIRFL_*`` variable raises
    :class:`~fl_agent.errors.ConfigError` naming it."""
    try:
        return Settings()
    except ValidationError as err:
        problems = "; ".join(
            f"FAIRFL_{'_'.join(str(part) for part in e['loc']).upper()}={e.get('input')!r}: "
            f"{e['msg']}" for e in err.errors())
        raise ConfigError(f"bad setting {problems} (fix or unset the environment variable)"
                          ) from None
