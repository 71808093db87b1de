// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title FairFL reward token (FLT)
/// @notice ERC-20 with EIP-2612 permit. New tokens are minted only by the contracts that pay
/// rewards (they hold `MINTER_ROLE`); nobody else can create supply.
interface IFairToken is IERC20 {
    /// @notice `mintBatch` got arrays of different lengths.
    error FairTokenLengthMismatch(uint256 recipients, uint256 amounts);

    /// @notice The role allowed to mint. Granted to the task ledger at deployment.
    function MINTER_ROLE() external view returns (bytes32);

    /// @notice Mints `amount` to `to`. Only `MINTER_ROLE`.
    function mint(address to, uint256 amount) external;

    /// @notice Mints `amounts[i]` to `recipients[i]` for every i, in one call. Only `MINTER_ROLE`.
    /// @dev Used by the ledger to pay a whole round at once; zero amounts are skipped.
    function mintBatch(address[] calldata recipients, uint256[] calldata amounts) external;
}
