"""Which failures are worth waiting out: :func:`transient`.

An agent's service loop (``fl_agent.cli.common.serve``) waits and tries again on these, and
an agent that handles events does not acknowledge an event whose handling failed on one
(``ParticipantAgent.step``): the event is handled again once the node or the store is back.

Written by hand: the errors come from five libraries (the standard library, requests,
httpx, web3 and ape), and which ones mean "not now" is FairFL's policy, not theirs.
"""

from __future__ import annotations

#: HTTP answers that mean "not now" rather than "no": too many requests, and a gateway or
#: server that is down or overloaded (a hosted RPC endpoint or a Kubo behind a proxy).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def transient(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a node or store that did not answer: a refused
    connection, a timeout, a dropped socket, an HTTP answer in :data:`RETRY_STATUSES`, or a
    JSON-RPC error that says the endpoint is rate-limiting
    (:func:`~fl_agent.chain.index.rate_limited`). Reverts, other HTTP and JSON-RPC errors
    and bad input are not."""
    import httpx
    import requests
    from ape.exceptions import ProviderError, ProviderNotConnectedError
    from web3.exceptions import Web3RPCError

    from fl_agent.chain.index import RpcError, rate_limited

    kinds = (ConnectionError, TimeoutError, requests.exceptions.ConnectionError,
             requests.exceptions.Timeout, httpx.TransportError, ProviderNotConnectedError)
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kinds):
            return True
        if isinstance(err, requests.exceptions.HTTPError | httpx.HTTPStatusError):
            response = getattr(err, "response", None)
            if getattr(response, "status_code", None) in RETRY_STATUSES:
                return True
        if isinstance(err, Web3RPCError):
            error = (err.rpc_response or {}).get("error")
            error = error if isinstance(error, dict) else {"message": str(error or err)}
            if rate_limited(error.get("code"), str(error.get("message", ""))):
                return True
        if isinstance(err, RpcError) and rate_limited(err.code, str(err)):
            return True
        if isinstance(err, ProviderError) and rate_limited(None, str(err)):
            return True  # ape's own requests keep the node's message and drop its code
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


__all__ = ["RETRY_STATUSES", "transient"]
