// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title FairFL reward token (FLT)
/// @notice ERC-20 with EIP-2612 permit and a supply cap. New tokens are minted only by the
/// accounts that hold `MINTER_ROLE`: at deployment, the task ledger alone, which pays rewards
/// and reserves each task's budget under the cap. The admin that could grant the role to
/// another account changes hands only through a delayed two-step transfer.
interface IFairToken is IERC20 {
    /// @notice The role allowed to mint. Granted to the task ledger at deployment.
    function MINTER_ROLE() external view returns (bytes32);

    /// @notice The most FLT that can ever exist.
    function cap() external view returns (uint256);

    /// @notice Mints `amount` to `to`. Only `MINTER_ROLE`; reverts with `ERC20ExceededCap` past the cap.
    function mint(address to, uint256 amount) external;
}
