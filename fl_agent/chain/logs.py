"""Reading the chain's height, blocks and logs so that a failing node is an error, not an
empty answer.

ape's ``chain.blocks.height`` turns every failure of the node (a refused connection, a 502,
a rate limit) into ``BlockNotFoundError`` and answers 0, and its event queries
(``ContractEvent.range``) clamp to that height. So during an outage an event query returned
no logs instead of failing, and a watcher polling several events could acknowledge the logs
of one and skip those of another for good. Here the height comes from ``eth_blockNumber``
and the logs from ``eth_getLogs`` (decoded by ape's ecosystem, as ape does), and any failure
propagates, where :func:`fl_agent.retry.transient` tells the agents to wait it out.

Written by hand: it is the part of ape's log query without the silent height.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any


def height() -> int:
    """The latest block number, asked of the node; raises when the node does not answer."""
    from ape import chain

    return int(chain.provider.web3.eth.block_number)


def block_hash(number: int) -> str | None:
    """The hash of block ``number`` (0x-hex), None if the chain has no such block; raises
    when the node does not answer."""
    from ape import chain
    from web3.exceptions import BlockNotFound

    try:
        block = chain.provider.web3.eth.get_block(number)
    except BlockNotFound:
        return None
    return "0x" + bytes(block["hash"]).hex()


def contract_logs(contract: Any, name: str, first: int, last: int,
                  filters: dict[str, Any] | None = None) -> list[Any]:
    """Decoded logs of event ``name`` of ape ``contract`` in blocks ``first``..``last``
    (inclusive), filtered on indexed fields; in pages of the provider's size."""
    from ape import chain
    from ape.types.events import LogFilter

    if last < first:
        return []
    abi = getattr(contract, name).abi
    provider = chain.provider
    log_filter = LogFilter.from_event(event=abi, search_topics=filters or None,
                                      addresses=[contract.address], start_block=first,
                                      stop_block=last)

    def page(bounds: tuple[int, int]) -> list[Any]:
        start, stop = bounds
        query = log_filter.model_copy(update={"start_block": start, "stop_block": stop})
        raw = provider.make_request("eth_getLogs", [query.model_dump(mode="json")])
        return list(provider.network.ecosystem.decode_logs(raw, abi))

    # Pages in parallel, as ape does; ``map`` keeps their order and re-raises a failure.
    with ThreadPoolExecutor(getattr(provider, "concurrency", 4)) as pool:
        return [log for logs in pool.map(page, provider.block_ranges(
            first, last, provider.block_page_size)) for log in logs]


__all__ = ["block_hash", "contract_logs", "height"]
