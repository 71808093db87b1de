// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";

/// @title ParticipantRegistry
/// @notice Identity, reputation and blacklist of FairFL participants.
contract ParticipantRegistry is IParticipantRegistry, AccessControl {
    /// @inheritdoc IParticipantRegistry
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");
    /// @inheritdoc IParticipantRegistry
    bytes32 public constant LEDGER_ROLE = keccak256("LEDGER_ROLE");
    /// @inheritdoc IParticipantRegistry
    uint16 public constant INITIAL_REPUTATION_BPS = 5_000;

    uint16 private constant _MAX_BPS = 10_000;

    mapping(address account => Participant) private _participants;
    mapping(address account => string) private _metadata;
    address[] private _registered;
    Policy private _policy;

    /// @param governance Receives `DEFAULT_ADMIN_ROLE` and `GOVERNANCE_ROLE`.
    /// @param initialPolicy Reputation and blacklist policy in force from the start.
    constructor(address governance, Policy memory initialPolicy) {
        _grantRole(DEFAULT_ADMIN_ROLE, governance);
        _grantRole(GOVERNANCE_ROLE, governance);
        _setPolicy(initialPolicy);
    }

    /// @inheritdoc IParticipantRegistry
    function register(string calldata metadataCid) external {
        Participant storage p = _participants[msg.sender];
        if (p.blacklisted) revert ParticipantRegistryBlacklisted(msg.sender);
        if (p.registered) revert ParticipantRegistryAlreadyRegistered(msg.sender);
        if (bytes(metadataCid).length == 0) revert ParticipantRegistryEmptyCid();
        p.registered = true;
        p.reputationBps = INITIAL_REPUTATION_BPS;
        _metadata[msg.sender] = metadataCid;
        _registered.push(msg.sender);
        emit ParticipantRegistered(msg.sender, metadataCid, INITIAL_REPUTATION_BPS);
    }

    /// @inheritdoc IParticipantRegistry
    function updateMetadata(string calldata metadataCid) external {
        Participant storage p = _participants[msg.sender];
        if (p.blacklisted) revert ParticipantRegistryBlacklisted(msg.sender);
        if (!p.registered) revert ParticipantRegistryNotRegistered(msg.sender);
        if (bytes(metadataCid).length == 0) revert ParticipantRegistryEmptyCid();
        _metadata[msg.sender] = metadataCid;
        emit MetadataUpdated(msg.sender, metadataCid);
    }

    /// @inheritdoc IParticipantRegistry
    function recordRound(
        uint256 taskId,
        uint256 round,
        address[] calldata accepted,
        uint16[] calldata outcomesBps,
        address[] calldata rejected
    ) external onlyRole(LEDGER_ROLE) {
        if (accepted.length != outcomesBps.length) {
            revert ParticipantRegistryLengthMismatch(accepted.length, outcomesBps.length);
        }
        Policy memory policy_ = _policy;
        for (uint256 i; i < accepted.length; ++i) {
            uint16 outcome = outcomesBps[i];
            if (outcome > _MAX_BPS) revert ParticipantRegistryInvalidOutcome(outcome);
            Participant storage p = _participants[accepted[i]];
            // A blacklisted address must never gain anything, not even through the ledger.
            if (p.blacklisted) revert ParticipantRegistryBlacklisted(accepted[i]);
            p.acceptedUpdates += 1;
            _moveReputation(p, accepted[i], taskId, round, outcome, policy_.alphaBps);
        }
        for (uint256 i; i < rejected.length; ++i) {
            address account = rejected[i];
            Participant storage p = _participants[account];
            p.rejectedUpdates += 1;
            _moveReputation(p, account, taskId, round, 0, policy_.alphaBps);
            _countRejection(p, account, taskId, round, policy_);
        }
    }

    /// @inheritdoc IParticipantRegistry
    function blacklist(address account, string calldata evidenceCid) external onlyRole(GOVERNANCE_ROLE) {
        if (bytes(evidenceCid).length == 0) revert ParticipantRegistryEmptyCid();
        Participant storage p = _participants[account];
        if (p.blacklisted) revert ParticipantRegistryBlacklisted(account);
        p.blacklisted = true;
        emit Blacklisted(account, msg.sender, false, evidenceCid);
    }

    /// @inheritdoc IParticipantRegistry
    function liftBlacklist(address account) external onlyRole(GOVERNANCE_ROLE) {
        Participant storage p = _participants[account];
        if (!p.blacklisted) revert ParticipantRegistryNotBlacklisted(account);
        p.blacklisted = false;
        p.rejectionsInWindow = 0;
        p.windowStartBlock = 0;
        emit BlacklistLifted(account, msg.sender);
    }

    /// @inheritdoc IParticipantRegistry
    function setPolicy(Policy calldata newPolicy) external onlyRole(GOVERNANCE_ROLE) {
        _setPolicy(newPolicy);
    }

    /// @inheritdoc IParticipantRegistry
    function participant(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    /// @inheritdoc IParticipantRegistry
    function metadataOf(address account) external view returns (string memory) {
        return _metadata[account];
    }

    /// @inheritdoc IParticipantRegistry
    function reputationOf(address account) external view returns (uint16) {
        return _participants[account].reputationBps;
    }

    /// @inheritdoc IParticipantRegistry
    function isBlacklisted(address account) external view returns (bool) {
        return _participants[account].blacklisted;
    }

    /// @inheritdoc IParticipantRegistry
    function isActive(address account) external view returns (bool) {
        Participant storage p = _participants[account];
        return p.registered && !p.blacklisted;
    }

    /// @inheritdoc IParticipantRegistry
    function policy() external view returns (Policy memory) {
        return _policy;
    }

    /// @inheritdoc IParticipantRegistry
    function participantCount() external view returns (uint256) {
        return _registered.length;
    }

    /// @inheritdoc IParticipantRegistry
    function participantAt(uint256 index) external view returns (address) {
        return _registered[index];
    }

    function _setPolicy(Policy memory newPolicy) private {
        if (
            newPolicy.alphaBps == 0 || newPolicy.alphaBps > _MAX_BPS || newPolicy.maxRejections == 0
                || newPolicy.windowBlocks == 0
        ) {
            revert ParticipantRegistryInvalidPolicy(newPolicy.alphaBps, newPolicy.maxRejections, newPolicy.windowBlocks);
        }
        _policy = newPolicy;
        emit PolicyUpdated(newPolicy.alphaBps, newPolicy.maxRejections, newPolicy.windowBlocks);
    }

    function _moveReputation(
        Participant storage p,
        address account,
        uint256 taskId,
        uint256 round,
        uint16 outcomeBps,
        uint16 alphaBps
    ) private {
        uint16 old = p.reputationBps;
        // EWMA in basis points; both terms are <= 10_000 * 10_000, far from overflow.
        uint16 updated = uint16(
            (uint256(old) * (_MAX_BPS - alphaBps) + uint256(outcomeBps) * alphaBps) / _MAX_BPS
        );
        p.reputationBps = updated;
        emit ReputationUpdated(account, taskId, round, outcomeBps, old, updated);
    }

    /// @dev Tumbling window: it opens at the first rejection and lasts `windowBlocks` blocks;
    /// a rejection after it closes opens a new one.
    function _countRejection(
        Participant storage p,
        address account,
        uint256 taskId,
        uint256 round,
        Policy memory policy_
    ) private {
        if (p.rejectionsInWindow == 0 || block.number >= p.windowStartBlock + policy_.windowBlocks) {
            p.windowStartBlock = uint64(block.number);
            p.rejectionsInWindow = 1;
        } else {
            p.rejectionsInWindow += 1;
        }
        emit UpdateRejected(account, taskId, round, p.rejectionsInWindow);
        if (!p.blacklisted && p.rejectionsInWindow >= policy_.maxRejections) {
            p.blacklisted = true;
            emit Blacklisted(account, msg.sender, true, "");
        }
    }
}
