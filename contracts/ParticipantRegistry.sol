// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {Governed} from "./utils/Governed.sol";

/// @title ParticipantRegistry
/// @notice Identity, reputation and blacklist of FairFL participants.
contract ParticipantRegistry is IParticipantRegistry, Governed {
    /// @inheritdoc IParticipantRegistry
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");
    /// @inheritdoc IParticipantRegistry
    bytes32 public constant LEDGER_ROLE = keccak256("LEDGER_ROLE");
    /// @inheritdoc IParticipantRegistry
    uint16 public constant INITIAL_REPUTATION_BPS = 5_000;
    /// @inheritdoc IParticipantRegistry
    uint8 public constant HELD_BACK = 13;

    uint16 private constant _MAX_BPS = 10_000;

    mapping(address account => Participant) private _participants;
    mapping(address account => string) private _metadata;
    mapping(address account => AppealStatus) private _appeals;
    address[] private _registered;
    Policy private _policy;

    /// @param governance Receives `DEFAULT_ADMIN_ROLE` and `GOVERNANCE_ROLE`.
    /// @param initialPolicy Reputation and blacklist policy in force from the start.
    constructor(address governance, Policy memory initialPolicy) Governed(governance) {
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
    function recordRound(RoundRecord calldata record) external onlyRole(LEDGER_ROLE) {
        Policy memory policy_ = _policy;
        _recordAccepted(record.taskId, record.round, record.accepted, record.outcomesBps, policy_.alphaBps);
        address[] calldata rejected = record.rejected;
        uint8[] calldata reasons = record.reasons;
        if (rejected.length != reasons.length) revert ParticipantRegistryLengthMismatch(rejected.length, reasons.length);
        for (uint256 i; i < rejected.length; ++i) {
            Participant storage p = _participants[rejected[i]];
            p.rejectedUpdates += 1;
            if (reasons[i] == HELD_BACK) {
                // Left out without evidence of harm: recorded, neither counted nor penalised.
                emit UpdateRejected(
                    rejected[i],
                    record.taskId,
                    record.round,
                    record.aggregator,
                    HELD_BACK,
                    p.rejectionsInWindow,
                    record.evidenceCid
                );
                continue;
            }
            _moveReputation(p, rejected[i], record.taskId, record.round, 0, policy_.alphaBps);
            _countRejection(p, rejected[i], record, reasons[i], policy_);
        }
    }

    /// @inheritdoc IParticipantRegistry
    function blacklist(address account, string calldata evidenceCid) external onlyRole(GOVERNANCE_ROLE) {
        if (bytes(evidenceCid).length == 0) revert ParticipantRegistryEmptyCid();
        Participant storage p = _participants[account];
        if (p.blacklisted) revert ParticipantRegistryBlacklisted(account);
        _blacklist(p, account, msg.sender, 0, 0, false, evidenceCid);
    }

    /// @inheritdoc IParticipantRegistry
    function liftBlacklist(address account) external onlyRole(GOVERNANCE_ROLE) {
        Participant storage p = _participants[account];
        if (!p.blacklisted) revert ParticipantRegistryNotBlacklisted(account);
        delete _appeals[account]; // a pending appeal is moot once the blacklisting is lifted
        _lift(p, account);
    }

    /// @inheritdoc IParticipantRegistry
    function fileAppeal(string calldata statementCid) external {
        if (!_participants[msg.sender].blacklisted) revert ParticipantRegistryNotBlacklisted(msg.sender);
        if (bytes(statementCid).length == 0) revert ParticipantRegistryEmptyCid();
        AppealStatus status = _appeals[msg.sender];
        if (status != AppealStatus.None) revert ParticipantRegistryAlreadyAppealed(msg.sender, status);
        _appeals[msg.sender] = AppealStatus.Pending;
        emit AppealFiled(msg.sender, statementCid);
    }

    /// @inheritdoc IParticipantRegistry
    function resolveAppeal(address account, bool granted, string calldata decisionCid)
        external
        onlyRole(GOVERNANCE_ROLE)
    {
        if (_appeals[account] != AppealStatus.Pending) revert ParticipantRegistryNoPendingAppeal(account);
        if (bytes(decisionCid).length == 0) revert ParticipantRegistryEmptyCid();
        emit AppealResolved(account, msg.sender, granted, decisionCid);
        if (granted) {
            _lift(_participants[account], account);
            _appeals[account] = AppealStatus.Granted;
        } else {
            _appeals[account] = AppealStatus.Denied;
        }
    }

    /// @inheritdoc IParticipantRegistry
    function appealOf(address account) external view returns (AppealStatus) {
        return _appeals[account];
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

    function _recordAccepted(
        uint256 taskId,
        uint256 round,
        address[] calldata accepted,
        uint16[] calldata outcomesBps,
        uint16 alphaBps
    ) private {
        if (accepted.length != outcomesBps.length) {
            revert ParticipantRegistryLengthMismatch(accepted.length, outcomesBps.length);
        }
        for (uint256 i; i < accepted.length; ++i) {
            uint16 outcome = outcomesBps[i];
            if (outcome > _MAX_BPS) revert ParticipantRegistryInvalidOutcome(outcome);
            Participant storage p = _participants[accepted[i]];
            // A blacklisted address must never gain anything, not even through the ledger.
            if (p.blacklisted) revert ParticipantRegistryBlacklisted(accepted[i]);
            p.acceptedUpdates += 1;
            _moveReputation(p, accepted[i], taskId, round, outcome, alphaBps);
        }
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
    /// a rejection after it closes opens a new one. The window's end is summed in 256 bits:
    /// `windowBlocks` may be as large as 2^64 - 1.
    function _countRejection(
        Participant storage p,
        address account,
        RoundRecord calldata record,
        uint8 reason,
        Policy memory policy_
    ) private {
        if (p.rejectionsInWindow == 0 || block.number >= uint256(p.windowStartBlock) + policy_.windowBlocks) {
            p.windowStartBlock = uint64(block.number);
            p.rejectionsInWindow = 1;
        } else {
            p.rejectionsInWindow += 1;
        }
        emit UpdateRejected(
            account, record.taskId, record.round, record.aggregator, reason, p.rejectionsInWindow, record.evidenceCid
        );
        if (!p.blacklisted && p.rejectionsInWindow >= policy_.maxRejections) {
            _blacklist(p, account, record.aggregator, record.taskId, record.round, true, record.evidenceCid);
        }
    }

    function _blacklist(
        Participant storage p,
        address account,
        address by,
        uint256 taskId,
        uint256 round,
        bool automatic,
        string calldata evidenceCid
    ) private {
        p.blacklisted = true;
        delete _appeals[account]; // a new blacklisting may be appealed anew
        emit Blacklisted(account, by, taskId, round, automatic, evidenceCid);
    }

    function _lift(Participant storage p, address account) private {
        p.blacklisted = false;
        p.rejectionsInWindow = 0;
        p.windowStartBlock = 0;
        emit BlacklistLifted(account, msg.sender);
    }
}
