"""The JSON documents FairFL stores in IPFS (the task document, a round's evidence, a
listing's metadata): pydantic models written as canonical JSON, so that equal documents have
equal bytes and so equal CIDs, and read strictly, so that a malformed one is a
:class:`~fl_agent.errors.ConfigError` that names what it should have been."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import from_json

from fl_agent.errors import ConfigError


class Document(BaseModel):
    """Base of every stored document; ``KIND`` names it in error messages."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    KIND: ClassVar[str] = "FairFL document"

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no spaces."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True,
                          separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        try:
            return cls.model_validate_json(data)
        except (ValidationError, ConfigError) as err:
            raise ConfigError(f"not a valid {cls.KIND}: {err}") from err


def parse_json(data: bytes | str) -> Any:
    """JSON that anyone may have written (a store document, an update's header), parsed by
    pydantic's parser, which limits nesting: ``json.loads`` recurses in C once per level,
    raising RecursionError (not the ValueError callers expect) on deep nesting, or crashing
    the process when a library has raised the recursion limit. Raises ValueError on bad
    JSON or nesting deeper than the parser allows."""
    return from_json(data)

