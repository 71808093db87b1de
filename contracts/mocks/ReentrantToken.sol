// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken (test only)
/// @notice A hostile ERC-20 that calls back into a target during every transfer, with calldata
/// chosen by the test. Used to prove that the marketplace's `buy`, `withdraw` and `refund` cannot be
/// re-entered.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public callbackData;

    constructor() ERC20("Reentrant", "REE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata data) external {
        target = target_;
        callbackData = data;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address t = target;
        if (t != address(0)) {
            target = address(0); // one shot, so the callback cannot loop forever
            (bool ok, bytes memory reason) = t.call(callbackData);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
    }
}
