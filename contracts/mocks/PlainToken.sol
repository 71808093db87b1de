// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title PlainToken (test only)
/// @notice An ERC-20 without EIP-2612 permit, like many stablecoins, with a mint open to anyone.
/// Shows that the marketplace takes any ERC-20: approve + buy, and `buyWithPermit` when an
/// allowance is already there.
contract PlainToken is ERC20 {
    constructor() ERC20("Plain Dollar", "PUSD") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
