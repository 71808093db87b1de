// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";

/// @title Governed
/// @notice Access control of every FairFL contract: OpenZeppelin's `AccessControlDefaultAdminRules`
/// with one delay for all of them. The admin (who grants every other role) is a single account
/// that hands over in two steps: `beginDefaultAdminTransfer(next)`, then `next` calls
/// `acceptDefaultAdminTransfer()` once `ADMIN_TRANSFER_DELAY` has passed, so that a stolen or
/// mistyped admin key cannot take the system over at once.
abstract contract Governed is AccessControlDefaultAdminRules {
    /// @notice Time between the start and the end of an admin hand-over.
    uint48 public constant ADMIN_TRANSFER_DELAY = 2 days;

    constructor(address admin) AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin) {}
}
