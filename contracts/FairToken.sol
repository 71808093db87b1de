// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IFairToken} from "./interfaces/IFairToken.sol";

/// @title FairToken
/// @notice "FairFL Token" (FLT): the reward and payment currency of FairFL.
contract FairToken is IFairToken, ERC20, ERC20Permit, AccessControl {
    /// @inheritdoc IFairToken
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and so decides who may mint.
    constructor(address admin) ERC20("FairFL Token", "FLT") ERC20Permit("FairFL Token") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IFairToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IFairToken
    function mintBatch(address[] calldata recipients, uint256[] calldata amounts)
        external
        onlyRole(MINTER_ROLE)
    {
        if (recipients.length != amounts.length) {
            revert FairTokenLengthMismatch(recipients.length, amounts.length);
        }
        for (uint256 i; i < recipients.length; ++i) {
            if (amounts[i] != 0) _mint(recipients[i], amounts[i]);
        }
    }
}
