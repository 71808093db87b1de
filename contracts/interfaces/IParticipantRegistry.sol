// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Participant registry: identity, reputation and blacklist
/// @notice An address registers with the CID of a metadata document describing its device or
/// data; the address is the identity. Each participant carries a reputation in basis points,
/// moved after every round by an exponentially weighted moving average (EWMA) of its round
/// outcome. Rejected updates are counted in a block window; reaching the policy's threshold
/// blacklists the sender automatically. An update held back (reason `HELD_BACK`: left out of
/// the aggregate without evidence of harm) is neither counted nor moves the reputation.
/// Every rejection names the task, the round, the aggregator, its reason and the CID of the
/// round's evidence, so that anyone can re-run the rule. Governance can blacklist any address
/// with an evidence CID, and only governance lifts a blacklisting. A blacklisted address may
/// file one appeal per blacklisting; governance grants it (the blacklisting is lifted) or
/// denies it.
interface IParticipantRegistry {
    /// @notice Where an address's appeal against its current blacklisting stands.
    enum AppealStatus {
        None,
        Pending,
        Granted,
        Denied
    }

    /// @notice Everything the registry stores about one address (one storage slot).
    /// @param registered Whether the address called `register`.
    /// @param blacklisted Whether the address is blacklisted (it may be unregistered).
    /// @param reputationBps Current reputation, 0..10_000.
    /// @param rejectionsInWindow Rejected updates counted in the current window.
    /// @param windowStartBlock Block at which the current rejection window opened.
    /// @param acceptedUpdates Lifetime count of accepted updates.
    /// @param rejectedUpdates Lifetime count of rejected updates.
    struct Participant {
        bool registered;
        bool blacklisted;
        uint16 reputationBps;
        uint32 rejectionsInWindow;
        uint64 windowStartBlock;
        uint32 acceptedUpdates;
        uint32 rejectedUpdates;
    }

    /// @notice How reputation moves and when automatic blacklisting happens.
    /// @param alphaBps EWMA weight of the newest outcome, 1..10_000.
    /// @param maxRejections Rejections within `windowBlocks` that blacklist an address (>= 1).
    /// @param windowBlocks Length of the rejection window in blocks (>= 1).
    struct Policy {
        uint16 alphaBps;
        uint32 maxRejections;
        uint64 windowBlocks;
    }

    /// @notice `account` registered with `metadataCid` and starts at `reputationBps`.
    event ParticipantRegistered(address indexed account, string metadataCid, uint16 reputationBps);
    /// @notice `account` replaced its metadata document.
    event MetadataUpdated(address indexed account, string metadataCid);
    /// @notice The outcome of `account` in round `round` of task `taskId` moved its reputation.
    event ReputationUpdated(
        address indexed account, uint256 indexed taskId, uint256 round, uint16 outcomeBps, uint16 oldBps, uint16 newBps
    );
    /// @notice `aggregator` rejected the update of `account` in round `round` of task `taskId`
    /// for `reason` (a `RoundResult.reasons` code of the ledger); the scores and similarities
    /// its rule used are at `evidenceCid`. `rejectionsInWindow` counts toward the blacklist;
    /// a held-back update (`reason` = `HELD_BACK`) leaves it, and the reputation, unchanged.
    event UpdateRejected(
        address indexed account,
        uint256 indexed taskId,
        uint256 round,
        address indexed aggregator,
        uint8 reason,
        uint32 rejectionsInWindow,
        string evidenceCid
    );
    /// @notice `account` was blacklisted by `by`: automatically by the rejection of aggregator
    /// `by` in round `round` of task `taskId`, or by governance member `by` (task and round 0).
    /// The evidence is at `evidenceCid`.
    event Blacklisted(
        address indexed account,
        address indexed by,
        uint256 indexed taskId,
        uint256 round,
        bool automatic,
        string evidenceCid
    );
    /// @notice `account` appealed its blacklisting; its statement is at `statementCid`.
    event AppealFiled(address indexed account, string statementCid);
    /// @notice Governance member `by` granted (the blacklisting was lifted) or denied the
    /// appeal of `account`; the decision is at `decisionCid`.
    event AppealResolved(address indexed account, address indexed by, bool granted, string decisionCid);
    /// @notice Governance member `by` lifted the blacklisting of `account`.
    event BlacklistLifted(address indexed account, address indexed by);
    /// @notice Governance changed the reputation and blacklist policy.
    event PolicyUpdated(uint16 alphaBps, uint32 maxRejections, uint64 windowBlocks);

    /// @notice The address has registered before.
    error ParticipantRegistryAlreadyRegistered(address account);
    /// @notice The address never registered.
    error ParticipantRegistryNotRegistered(address account);
    /// @notice The address is blacklisted and cannot move state.
    error ParticipantRegistryBlacklisted(address account);
    /// @notice Lifting a blacklisting that does not exist.
    error ParticipantRegistryNotBlacklisted(address account);
    /// @notice A CID argument was empty.
    error ParticipantRegistryEmptyCid();
    /// @notice The policy values are out of range.
    error ParticipantRegistryInvalidPolicy(uint16 alphaBps, uint32 maxRejections, uint64 windowBlocks);
    /// @notice `recordRound` got arrays of different lengths.
    error ParticipantRegistryLengthMismatch(uint256 accounts, uint256 outcomes);
    /// @notice An outcome above 10_000 basis points.
    error ParticipantRegistryInvalidOutcome(uint16 outcomeBps);
    /// @notice The account already appealed its current blacklisting (`status`).
    error ParticipantRegistryAlreadyAppealed(address account, AppealStatus status);
    /// @notice The account has no pending appeal.
    error ParticipantRegistryNoPendingAppeal(address account);

    /// @notice Role of governance: manual blacklist, lift, policy.
    function GOVERNANCE_ROLE() external view returns (bytes32);
    /// @notice Role of the ledger that reports round outcomes.
    function LEDGER_ROLE() external view returns (bytes32);
    /// @notice Reputation of a newly registered participant, in basis points.
    function INITIAL_REPUTATION_BPS() external view returns (uint16);
    /// @notice The rejection reason code of an update held back: left out of the round's
    /// aggregate without evidence of harm. It counts in `rejectedUpdates`, but neither
    /// towards the blacklist window nor in the reputation.
    function HELD_BACK() external view returns (uint8);

    /// @notice Registers the caller with the CID of its metadata document.
    function register(string calldata metadataCid) external;

    /// @notice Replaces the caller's metadata CID.
    function updateMetadata(string calldata metadataCid) external;

    /// @notice What one round did to reputations, as the ledger reports it.
    /// @param aggregator The task's aggregator that finalized the round.
    /// @param evidenceCid CID of the round's evidence document.
    /// @param accepted Participants whose updates were aggregated; they must not be blacklisted.
    /// @param outcomesBps Quality of each accepted update, 0..10_000, the EWMA target.
    /// @param rejected Participants whose updates were rejected; their EWMA target is 0 and the
    /// rejection counts toward automatic blacklisting.
    /// @param reasons Why each of `rejected` was rejected (same order).
    struct RoundRecord {
        uint256 taskId;
        uint256 round;
        address aggregator;
        string evidenceCid;
        address[] accepted;
        uint16[] outcomesBps;
        address[] rejected;
        uint8[] reasons;
    }

    /// @notice Applies one round's outcomes. Only `LEDGER_ROLE`.
    function recordRound(RoundRecord calldata record) external;

    /// @notice Blacklists `account` with the CID of the evidence. Only `GOVERNANCE_ROLE`.
    function blacklist(address account, string calldata evidenceCid) external;

    /// @notice Lifts the blacklisting of `account` and clears its rejection window. Only `GOVERNANCE_ROLE`.
    function liftBlacklist(address account) external;

    /// @notice The caller, blacklisted, appeals against it with the CID of its statement. Once
    /// per blacklisting.
    function fileAppeal(string calldata statementCid) external;

    /// @notice Grants (lifts the blacklisting, as `liftBlacklist`) or denies the pending appeal
    /// of `account`, with the CID of the decision. Only `GOVERNANCE_ROLE`.
    function resolveAppeal(address account, bool granted, string calldata decisionCid) external;

    /// @notice Where the appeal of `account` against its current blacklisting stands.
    function appealOf(address account) external view returns (AppealStatus);

    /// @notice Sets the reputation and blacklist policy. Only `GOVERNANCE_ROLE`.
    function setPolicy(Policy calldata newPolicy) external;

    /// @notice The stored record of `account` (all zero if unknown).
    function participant(address account) external view returns (Participant memory);

    /// @notice The metadata CID `account` registered with, exactly as given.
    function metadataOf(address account) external view returns (string memory);

    /// @notice Current reputation of `account` in basis points.
    function reputationOf(address account) external view returns (uint16);

    /// @notice Whether `account` is blacklisted.
    function isBlacklisted(address account) external view returns (bool);

    /// @notice Whether `account` is registered and not blacklisted.
    function isActive(address account) external view returns (bool);

    /// @notice The current policy.
    function policy() external view returns (Policy memory);

    /// @notice Number of addresses that ever registered.
    function participantCount() external view returns (uint256);

    /// @notice The `index`-th registered address, in registration order.
    function participantAt(uint256 index) external view returns (address);
}
