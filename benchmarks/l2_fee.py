"""What a transaction costs in ETH: the gas prices assumed for Ethereum mainnet and an
OP-stack L2, and the L2's L1 data fee (Fjord, and Ecotone before it), for
:mod:`benchmarks.gas_cost`.

The Fjord fee needs the FastLZ-compressed length of the signed transaction; no Python
package computes op-geth's ``FlzCompressLen``, so :func:`flz_compress_len` ports it (checked
against op-geth's test vectors by the benchmark's test).
"""

from __future__ import annotations

from benchmarks.gas_floor import calldata

# -- prices of the cost model -----------------------------------------------------------------
#: Ethereum mainnet: effective gas price (base fee + priority fee), gwei.
MAINNET_GWEI = (1, 5, 20)
#: OP-stack L2 (Fjord and later): execution gas at ``l2_gwei`` (L2 base fee + priority fee),
#: plus the L1 data fee priced from the L1 base fee and blob base fee the L2 last saw.
L2_SCENARIOS = (
    {"name": "quiet", "l2_gwei": 0.001, "l1_base_fee_gwei": 1.0, "blob_base_fee_gwei": 0.001},
    {"name": "typical", "l2_gwei": 0.01, "l1_base_fee_gwei": 5.0, "blob_base_fee_gwei": 1.0},
    {"name": "busy", "l2_gwei": 0.1, "l1_base_fee_gwei": 20.0, "blob_base_fee_gwei": 10.0},
)
#: The chain operator's fee scalars (scaled by 1e6), assumed: of the order OP-stack chains
#: set (the live ones are in the GasPriceOracle predeploy, 0x420...0F). The L1 data fee is
#: linear in both terms. The operator fee (Isthmus) is assumed 0.
OP_SCALARS = {"base_fee_scalar": 2_000, "blob_base_fee_scalar": 1_000_000}
#: Fjord's FastLZ regression (scaled by 1e6) and lower bound on a transaction's size.
FJORD = {"intercept": -42_585_600, "fastlz_coef": 836_500, "min_tx_size": 100}
GWEI = 10**9


# -- OP-stack L1 data fee ---------------------------------------------------------------------
def flz_compress_len(data: bytes) -> int:
    """Length of ``data`` compressed by FastLZ (level 1), as op-geth's ``FlzCompressLen``
    (core/types/rollup_cost.go) counts it for the Fjord L1 fee."""
    size = 0
    table = [0] * 8192

    def u24(i: int) -> int:
        return data[i] | data[i + 1] << 8 | data[i + 2] << 16

    def slot(value: int) -> int:
        return ((2654435769 * value) & 0xFFFFFFFF) >> 19 & 0x1FFF

    def literals(run: int) -> int:
        return 0x21 * (run // 0x20) + (run % 0x20 + 1 if run % 0x20 else 0)

    def match(length: int) -> int:
        length -= 1
        return 3 * (length // 262) + (3 if length % 262 >= 6 else 2)

    anchor, limit = 0, max(len(data) - 13, 0)
    ip = 2
    while ip < limit:
        while True:  # find the next 3-byte match within 8 KiB
            value = u24(ip)
            ref = table[slot(value)]
            table[slot(value)] = ip
            distance = ip - ref
            if ip >= limit:
                break
            ip += 1
            if distance <= 0x1FFF and value == u24(ref):
                break
        if ip >= limit:
            break
        ip -= 1
        if ip > anchor:
            size += literals(ip - anchor)
        # Match length as op-geth counts it: up to and including the first differing byte.
        length, end = 0, limit + 9 - (ip + 3)
        while length < end:
            if data[ref + 3 + length] != data[ip + 3 + length]:
                end = 0
            length += 1
        size += match(length)
        for step in (0, 1):
            table[slot(u24(ip + length + step))] = ip + length + step
        ip += length + 2
        anchor = ip
    return size + literals(len(data) - anchor)


def l1_fee_fjord(raw: bytes, l1_base_fee: int, blob_base_fee: int) -> int:
    """Fjord: ``estimatedSize * (16 * baseFeeScalar * l1BaseFee + blobBaseFeeScalar *
    blobBaseFee) / 1e12``, with ``estimatedSize = max(minTxSize * 1e6, intercept + fastlzCoef
    * fastlzSize)``, all in wei."""
    size = max(FJORD["min_tx_size"] * 10**6,
               FJORD["intercept"] + FJORD["fastlz_coef"] * flz_compress_len(raw))
    scaled = (16 * OP_SCALARS["base_fee_scalar"] * l1_base_fee
              + OP_SCALARS["blob_base_fee_scalar"] * blob_base_fee)
    return size * scaled // 10**12


def l1_fee_ecotone(raw: bytes, l1_base_fee: int, blob_base_fee: int) -> int:
    """Ecotone (before Fjord): ``calldataGas * (16 * baseFeeScalar * l1BaseFee +
    blobBaseFeeScalar * blobBaseFee) / 16e6``, calldataGas = 4 per zero byte + 16 per other."""
    scaled = (16 * OP_SCALARS["base_fee_scalar"] * l1_base_fee
              + OP_SCALARS["blob_base_fee_scalar"] * blob_base_fee)
    return calldata(raw)["gas"] * scaled // (16 * 10**6)
