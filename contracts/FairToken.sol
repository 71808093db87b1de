// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IFairToken} from "./interfaces/IFairToken.sol";
import {Governed} from "./utils/Governed.sol";

/// @title FairToken
/// @notice "FairFL Token" (FLT): the reward and payment currency of FairFL.
/// @dev Supply is capped at `MAX_SUPPLY`; the task ledger reserves each task's whole reward
/// budget under the cap when the task is created, so a credited reward can always be minted
/// while the ledger is the only minter (as deployed). Another account given `MINTER_ROLE`
/// (the local dev faucet) could mint into those reservations.
contract FairToken is IFairToken, ERC20, ERC20Capped, ERC20Permit, Governed {
    /// @inheritdoc IFairToken
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice The most FLT that can ever exist: one billion tokens.
    uint256 public constant MAX_SUPPLY = 1_000_000_000 ether;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and so decides who may mint.
    constructor(address admin)
        ERC20("FairFL Token", "FLT")
        ERC20Capped(MAX_SUPPLY)
        ERC20Permit("FairFL Token")
        Governed(admin)
    {}

    /// @inheritdoc IFairToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IFairToken
    function cap() public view override(IFairToken, ERC20Capped) returns (uint256) {
        return super.cap();
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
