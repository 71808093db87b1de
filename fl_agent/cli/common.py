"""What every ``fl-agent`` command group shares: the console, the options, connecting to a
deployment, resolving accounts and opening the content store."""

from __future__ import annotations

import functools
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from fl_agent.chain.node import LocalChain
from fl_agent.errors import FairFLError
from fl_agent.retry import transient
from fl_agent.settings import Settings, get_settings

# Wide enough for CIDs and addresses when the output goes to a log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
FLT = 10**18

network_option = click.option(
    "--network", default=None, help="ape network choice (default: FAIRFL_NETWORK, the shared "
    "local chain of `fl-agent chain up`).")
#: What a private key looks like (32 bytes in hex), so that one given as an account name is
#: refused before anything else happens, and never echoed.
PRIVATE_KEY = re.compile(r"(0[xX])?[0-9a-fA-F]{64}")
NOT_A_KEY = ("this looks like a private key, and --account takes the name of an ape account. "
             "Never pass a key on the command line (shell history and process lists keep it): "
             "`ape accounts import NAME` stores it encrypted, then use --account NAME")


def _account_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and PRIVATE_KEY.fullmatch(re.sub(r"\s", "", value)):
        raise click.BadParameter(NOT_A_KEY)
    return value


account_option = click.option(
    "--account", required=True, metavar="ALIAS", callback=_account_name,
    help="ape account alias that signs (TEST::n for the n-th local test account).")
ipfs_option = click.option(
    "--ipfs",
    default=None,
    metavar="URL",
    help="Kubo RPC URL, e.g. http://127.0.0.1:5001 (default: FAIRFL_IPFS, else the embedded "
    "store in .fairfl/store).",
)


#: The longest pause between two attempts when the node or the store does not answer.
MAX_BACKOFF = 60.0


def serve(step: Callable[[], object], finished: Callable[[], bool], poll_interval: float,
          log: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> None:
    """Runs an agent until ``finished()``: ``step()``, then a pause of ``poll_interval``
    (none if ``step`` returned True: it did something and may have more to do).
    When the chain node or the store does not answer (:func:`fl_agent.retry.transient`), the
    pause doubles up to :data:`MAX_BACKOFF` and the agent tries again; the agent
    acknowledges an event only once it was handled, so nothing is lost meanwhile. Any other
    error stops it."""
    delay = poll_interval
    while True:
        try:
            if finished():
                return
            busy = step()
            delay = poll_interval
            if busy is True:
                continue
        except Exception as err:
            if not transient(err):
                raise
            delay = min(MAX_BACKOFF, max(delay, poll_interval) * 2)
            log(f"[yellow]the node or the store did not answer ({type(err).__name__}); "
                f"retrying in {delay:.0f} s[/]")
        sleep(delay)


class Finite(click.FloatRange):
    """A number in the range that is also finite (click's FloatRange lets nan and inf in)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def privacy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The privacy options shared by ``task create`` and ``simulate``; the command receives
    ``mode`` (already joined with ``--watermark``), ``epsilon``, ``delta``, ``dp_level``,
    ``dp_length_check`` and ``prune_ratio`` (see :func:`fl_agent.privacy.plan.build_plan`)."""
    options = [
        click.option("--mode", default="plain", show_default=True,
                     help="Privacy modes: plain, or dp, prune, he joined by '+' (dp+prune). "
                     "Recorded on chain; their settings go in the task document."),
        click.option("--watermark", is_flag=True,
                     help="Every participant embeds its own ownership watermark and commits "
                     "to its key on chain when it joins (any mode)."),
        click.option("--epsilon", type=Finite(min=0, min_open=True), default=None,
                     help="dp: the privacy budget epsilon each participant may spend over "
                     "the whole task (required with dp). Small budgets cost accuracy fast, "
                     "and more with more parameters: on digits with 10 participants of "
                     "40-200 examples, FedAvg reached 0.91 / 0.69 / 0.44 at epsilon 8 / 2 / "
                     "1 with the MLP and 0.93 / 0.85 / 0.71 with logreg, against 0.96 "
                     "without DP (docs/privacy-dp.md)."),
        click.option("--delta", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     default=1e-5, show_default=True, help="dp: the delta of (epsilon, delta)."),
        click.option("--dp-level", type=click.Choice(["example", "participant"]),
                     default="example", show_default=True,
                     help="dp: DP-SGD on each participant's examples, or DP-FedAvg at the "
                     "aggregator protecting whole participants."),
        click.option("--dp-length-check", is_flag=True,
                     help="dp (plain, example level): refuse an update longer or shorter than "
                     "its privacy receipt allows (DP-SGD's noise for the stated sigma plus "
                     "the most its clipped gradients can move it): refuses updates scaled "
                     "beyond that band and updates without their noise; off by default "
                     "(rule R44, docs/privacy-dp.md)."),
        click.option("--prune-ratio", type=click.FloatRange(0, 1, min_open=True,
                                                            max_open=True), default=None,
                     help="prune: the fraction of each update's entries dropped (top-k with "
                     "error feedback), e.g. 0.9."),
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, mode: str, watermark: bool, **kwargs: Any) -> Any:
        return command(*args, mode=f"{mode}+watermark" if watermark else mode, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def local_chain(settings: Settings, port: int | None = None) -> LocalChain:
    return LocalChain(settings.chain_dir, settings.rpc_host, port or settings.rpc_port)


def quiet_ape() -> None:
    from ape.logging import logger

    logger.set_level("WARNING")


@contextmanager
def connected(network: str) -> Iterator[None]:
    """Connects ape to ``network`` for the duration of the block."""
    from ape import networks

    try:
        with networks.parse_network_choice(network):
            yield
    except FairFLError:
        raise
    except Exception as err:  # ape raises many types for an unreachable node
        from ape.exceptions import NetworkError, ProviderError

        # NetworkError: an unknown ecosystem, network or provider; ProviderError: no node.
        if isinstance(err, NetworkError | ProviderError) or "connect" in str(err).lower() \
                or "not found" in str(err).lower():
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            reason = first.removesuffix("Options:").strip().rstrip(".")  # ape lists them all
            raise FairFLError(
                f"cannot reach network {network!r}: {reason}. Check --network (or "
                "FAIRFL_NETWORK; `ape networks list` shows the names); for the local chain, "
                "run `fl-agent chain up` (or `make chain`) first."
            ) from err
        raise


@contextmanager
def deployed(network: str | None) -> Iterator[tuple[Settings, Any]]:
    """Connects to ``network`` (default: FAIRFL_NETWORK) and yields the settings and the
    FairFL deployment recorded for it."""
    from fl_agent.chain import FairFL, load_deployment

    settings = get_settings()
    network = network or settings.network
    quiet_ape()
    with connected(network):
        yield settings, FairFL(load_deployment(network, settings.deployments))


def resolve_account(alias: str, unattended: bool = False) -> Any:
    """``TEST::3`` is ape's 4th test account (local chains); anything else is an ape account
    alias, an encrypted keyfile (``ape accounts import NAME``). The key never leaves ape: it
    is decrypted in memory to sign and never printed or written.

    ``unattended``: a service (agent) that signs many transactions unlocks the keyfile once,
    with the passphrase from ``APE_ACCOUNTS_<alias>_PASSPHRASE`` or, in a terminal, asked
    once; without either it stops with what to do rather than wait for a prompt."""
    import os

    from ape import accounts

    if PRIVATE_KEY.fullmatch(re.sub(r"\s", "", alias)):
        raise FairFLError(NOT_A_KEY)  # the value is not echoed
    if alias.upper().startswith("TEST::"):
        from fl_agent.chain.node import dev_account

        try:
            return dev_account(int(alias.split("::", 1)[1]))
        except ValueError:
            raise FairFLError(f"bad test account {alias!r}: use TEST::<number>") from None
    try:
        account = accounts.load(alias)
    except Exception as err:  # noqa: BLE001 - ape raises IndexError and its own types
        raise FairFLError(
            f"no ape account named {alias!r} ({err}); `ape accounts list` shows them and "
            "`ape accounts import NAME` adds one; on a local chain use TEST::<number>"
        ) from err
    if unattended and hasattr(account, "set_autosign"):
        variable = f"APE_ACCOUNTS_{alias}_PASSPHRASE"
        if variable not in os.environ and not sys.stdin.isatty():
            raise FairFLError(
                f"account {alias!r} is an encrypted keyfile and this agent signs without a "
                f"terminal: set {variable} to its passphrase (from a secret store, not a "
                "shell history), or start the agent in a terminal to be asked once"
            )
        try:
            account.set_autosign(True)
        except Exception as err:  # noqa: BLE001 - ape raises its own types for a bad passphrase
            raise FairFLError(f"cannot unlock account {alias!r}: {err}") from err
    return account


def open_store(ipfs: str | None) -> Any:
    """The content store: Kubo at ``ipfs`` (or FAIRFL_IPFS), else the embedded one."""
    from fl_agent.storage.store import open_store as _open

    settings = get_settings()
    try:
        return _open(ipfs or settings.ipfs, settings.store_dir, settings.max_content_bytes)
    except ValueError as err:
        raise FairFLError(f"bad --ipfs value: {err}") from err


def fmt_flt(amount: int) -> str:
    return f"{amount / FLT:,.4f} FLT"


class FairFLGroup(click.Group):
    """Turns FairFL errors into one readable line and exit code 1, instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FairFLError as err:
            console.print(f"[bold red]error:[/] {err}")
            sys.exit(1)
