// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Task and round ledger
/// @notice The public record of federated training. A task fixes the initial model, its spec,
/// the metric, the number of rounds, the reward budget per round, the training (privacy) mode,
/// the aggregator, the quorum and the submission window. Every upload (`UpdateSubmitted`) and
/// every aggregation (`RoundStarted` + `RoundFinalized`) is an event that carries the whole
/// record of Figure 1 of the FairFL paper: training mode, time, uploader, previous global model,
/// the updates aggregated, time spent and the IPFS location. CIDs are stored and emitted as the
/// exact strings given.
///
/// Liveness: a task can always move on. Governance (the registry's `GOVERNANCE_ROLE`) can
/// replace a task's aggregator at once, and the task creator `AGGREGATOR_DELAY` after proposing it;
/// the aggregator can close a round that did not reach its quorum once the window has passed,
/// and anyone can close a round the aggregator left open for one more window; the creator or
/// governance can cancel a task, and what it credited stays claimable. A closed round credits
/// nothing and keeps the global model; the task runs until `rounds` rounds are finalized.
///
/// Quorum: a round is finalized only with at least `minParticipants` contributors, each a
/// member that submitted to the round while in good standing and whose update the aggregator
/// accepted. So members that never train, blacklisted members (who cannot submit) and members
/// whose updates are rejected (sybils sending junk) make no quorum, and no model is finalized
/// with fewer accepted updates than the task asks for. The quorum counts updates, not their
/// weight in the aggregate: an accepted update the rule gives almost no weight still counts.
/// A round whose accepted updates fall short is closed with `closeRoundRejecting`: the
/// rejections count, as in `finalizeRound`, but there is no model and no reward.
///
/// Gas: rewards are credited at finalization and minted when the participant claims them
/// (pull payment), and the current global model is kept as the keccak-256 of its CID (the
/// strings live in events). That keeps `finalizeRound` near 20k gas per contributor
/// (docs/gas-cost.md: 75,200 + 20,166 per contributor, against a floor of about 13,800).
interface ITaskLedger {
    /// @notice Training-mode flags (bitwise OR). 0 means plain federated averaging.
    /// DP = 1 (differential privacy), PRUNING = 2, HOMOMORPHIC = 4.
    enum TaskStatus {
        None,
        Open,
        Completed,
        Cancelled
    }

    enum RoundStatus {
        None,
        Open,
        Finalized,
        Closed
    }

    /// @notice What a task creator supplies.
    /// @param modelCid CID of the initial global model (safetensors).
    /// @param specCid CID of the JSON document describing model architecture and dataset.
    /// @param metric Name of the validation metric used for scoring, e.g. "accuracy", "f1_macro".
    /// @param aggregator Address that starts and finalizes rounds.
    /// @param rounds Number of rounds (>= 1).
    /// @param minParticipants Members needed to start a round, and accepted updates needed to
    /// finalize one (>= 1).
    /// @param submissionWindow Blocks after a round starts during which updates are accepted (>= 1).
    /// @param trainingMode Bitmask of privacy options (DP = 1, PRUNING = 2, HOMOMORPHIC = 4,
    /// WATERMARK = 8); their parameters are in the task document at `specCid`.
    /// @param rewardPerRound FLT budget credited at most per round (rewardPerRound * rounds must fit in uint96).
    struct TaskConfig {
        string modelCid;
        string specCid;
        string metric;
        address aggregator;
        uint32 rounds;
        uint32 minParticipants;
        uint32 submissionWindow;
        uint8 trainingMode;
        uint256 rewardPerRound;
    }

    /// @notice A task as stored (four packed slots, then the spec strings).
    /// @param globalModelHash keccak256 of the current global model's CID string; the string
    /// itself is in `TaskCreated` (initial model) and the last `RoundFinalized`.
    /// @param totalRewarded FLT credited to contributors so far (claimed or not).
    /// @param finalizedRounds Rounds finalized so far; the task completes when it reaches
    /// `rounds` (closed rounds do not count, so `currentRound` may run past `rounds`).
    struct Task {
        address creator;
        uint32 rounds;
        uint32 currentRound;
        uint32 minParticipants;
        address aggregator;
        uint32 submissionWindow;
        uint32 participantCount;
        uint8 trainingMode;
        TaskStatus status;
        uint96 rewardPerRound;
        uint96 totalRewarded;
        uint32 finalizedRounds;
        bytes32 globalModelHash;
        string specCid;
        string metric;
    }

    /// @notice A round as stored (one slot). `finalizedBlock` is the block it was finalized or
    /// closed in.
    struct Round {
        uint64 startBlock;
        uint64 deadlineBlock;
        uint64 finalizedBlock;
        uint32 submissions;
        RoundStatus status;
    }

    /// @notice One participant's standing in one task (one slot).
    /// @param lastSubmittedRound The last round the participant submitted an update in (0: none).
    /// @param lastSettledRound The last round in which its update was accepted or rejected.
    /// @param earned Total FLT credited to it by this task (see `claimable` for what is unclaimed).
    struct Membership {
        bool joined;
        uint32 lastSubmittedRound;
        uint32 lastSettledRound;
        uint32 acceptedRounds;
        uint32 rejectedRounds;
        uint96 earned;
    }

    /// @notice What the aggregator reports when it closes a round.
    /// @param newModelCid CID of the new global model.
    /// @param modelHash SHA-256 of the new global model's plaintext weights (required). The
    /// aggregator may publish the model encrypted; this commits to what was encrypted. It is
    /// emitted in `RoundFinalized`, not stored. Members who can decrypt the round's model check
    /// it against this hash, and a buyer compares a listing's `plaintextHash` with the
    /// `modelHash` of its task's last `RoundFinalized` (the app and `fl-agent market` refuse to
    /// buy a listing that does not match).
    /// @param contributors Participants whose updates were aggregated.
    /// @param scoresPpm Their shares of the round budget in parts per million (sum <= 1_000_000):
    /// each is credited `rewardPerRound * score / 1_000_000`, rounded down. Parts per million, so
    /// that an equal split among hundreds of contributors leaves them at most one part apart.
    /// @param rejected Participants whose updates were discarded as malicious or free-riding.
    /// @param reasons Why each of `rejected` was discarded, one code per address, in the same
    /// order. The codes are recorded and emitted; the ledger does not interpret them, and the
    /// registry interprets one: 0 other, 1 invalid update (cannot be fetched, opened or
    /// decoded), 2 non-finite values, 3 no samples, 4 free rider, 5 norm outlier, 6 trigger
    /// (backdoor), 7 noise, 8 dissimilar, 9 validation, 10 outlier cluster, 11 not selected,
    /// 12 zero trust, 13 held back (not aggregated, but no evidence of harm: the registry
    /// neither counts it towards the blacklist nor moves the sender's reputation).
    /// @param evidenceCid CID of the round's evidence document (required): the verdict on every
    /// update (participant, update CID, accepted, reason, score, reward share), the validation
    /// score of the new model and the aggregation rule's statistics.
    /// @param aggregationMillis Time spent aggregating and scoring.
    struct RoundResult {
        string newModelCid;
        bytes32 modelHash;
        address[] contributors;
        uint32[] scoresPpm;
        address[] rejected;
        uint8[] reasons;
        string evidenceCid;
        uint64 aggregationMillis;
    }

    /// @notice Task `taskId` was created; the full configuration is in the event.
    event TaskCreated(uint256 indexed taskId, address indexed creator, address indexed aggregator, TaskConfig config);
    /// @notice `participant` joined task `taskId`.
    event ParticipantJoined(uint256 indexed taskId, address indexed participant, uint32 participantCount);
    /// @notice The aggregator opened round `round` on `globalModelCid`, with the per-participant
    /// workload assignment stored at `workloadCid`; submissions close after `deadlineBlock`.
    event RoundStarted(
        uint256 indexed taskId,
        uint256 indexed round,
        string globalModelCid,
        string workloadCid,
        uint64 deadlineBlock,
        uint8 trainingMode,
        uint64 timestamp
    );
    /// @notice `participant` uploaded `updateCid` (trained from the round's global model);
    /// `privacyCid` is its public privacy receipt (the protections applied to this update and
    /// the privacy budget spent so far), empty in plain mode.
    event UpdateSubmitted(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed participant,
        string updateCid,
        uint64 numSamples,
        uint64 trainingMillis,
        uint8 trainingMode,
        uint64 timestamp,
        string privacyCid
    );
    /// @notice `participant` committed to the key of the ownership watermark it embeds in its
    /// updates of task `taskId` (a hash binding the key, the account and the task).
    event WatermarkCommitted(uint256 indexed taskId, address indexed participant, bytes32 commitment);
    /// @notice `participant` claims that task `taskId`'s final model carries its watermark and
    /// reveals its key in the claim document at `claimCid`; anyone checks the key against
    /// `commitment`, and anyone who can read the model checks the bits.
    event WatermarkClaimed(uint256 indexed taskId, address indexed participant, bytes32 commitment, string claimCid);
    /// @notice The aggregator turned the round's global model (see `RoundStarted`) into
    /// `result.newModelCid`, whose plaintext weights hash to `result.modelHash` (SHA-256), from
    /// the updates of `result.contributors`, credited `rewards[i]` FLT to each, and discarded
    /// `result.rejected` for `result.reasons`; the round's evidence is at `result.evidenceCid`.
    /// The last round's event is where clients read the final model's `modelHash`.
    event RoundFinalized(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed aggregator,
        RoundResult result,
        uint256[] rewards,
        uint64 timestamp
    );
    /// @notice The last round of task `taskId` was finalized; `finalModelCid` is the result.
    event TaskCompleted(uint256 indexed taskId, string finalModelCid, uint256 totalRewarded);
    /// @notice Round `round` of task `taskId` was closed by `by` without a new model and without
    /// rewards, with `submissions` updates submitted.
    event RoundClosed(uint256 indexed taskId, uint256 indexed round, address indexed by, uint32 submissions);
    /// @notice The creator of task `taskId` proposed `aggregator` as its next aggregator, which
    /// it may install from time `readyTime` (a block timestamp) on.
    event AggregatorProposed(uint256 indexed taskId, address indexed aggregator, uint64 readyTime);
    /// @notice `by` replaced the aggregator of task `taskId`: `previous` by `aggregator`.
    event AggregatorReplaced(
        uint256 indexed taskId, address indexed previous, address indexed aggregator, address by
    );
    /// @notice `by` cancelled task `taskId`; what it credited stays claimable.
    event TaskCancelled(uint256 indexed taskId, address indexed by, uint256 totalRewarded);
    /// @notice `participant` claimed `amount` FLT of its rewards from task `taskId`; they were minted.
    event RewardsClaimed(uint256 indexed taskId, address indexed participant, uint256 amount);

    /// @notice No task with this id.
    error TaskLedgerUnknownTask(uint256 taskId);
    /// @notice The task configuration is invalid (see `TaskConfig`); `field` names the culprit.
    error TaskLedgerInvalidConfig(string field);
    /// @notice Only the task's aggregator may do this.
    error TaskLedgerNotAggregator(uint256 taskId, address caller);
    /// @notice The account is not a registered participant.
    error TaskLedgerNotRegistered(address account);
    /// @notice The account is blacklisted.
    error TaskLedgerBlacklisted(address account);
    /// @notice The participant already joined this task.
    error TaskLedgerAlreadyJoined(uint256 taskId, address participant);
    /// @notice The participant has not joined this task.
    error TaskLedgerNotJoined(uint256 taskId, address participant);
    /// @notice The task has run all its rounds.
    error TaskLedgerTaskCompleted(uint256 taskId);
    /// @notice Fewer participants joined than the task's minimum.
    error TaskLedgerNotEnoughParticipants(uint256 taskId, uint32 joined, uint32 required);
    /// @notice The previous round is still open.
    error TaskLedgerRoundStillOpen(uint256 taskId, uint256 round);
    /// @notice `given` is not the task's open round (`current`).
    error TaskLedgerWrongRound(uint256 taskId, uint256 given, uint256 current);
    /// @notice The round was already finalized.
    error TaskLedgerRoundAlreadyFinalized(uint256 taskId, uint256 round);
    /// @notice The submission window of the round closed at `deadlineBlock`.
    error TaskLedgerSubmissionClosed(uint256 taskId, uint256 round, uint64 deadlineBlock);
    /// @notice The participant already submitted in this round.
    error TaskLedgerAlreadySubmitted(uint256 taskId, uint256 round, address participant);
    /// @notice The participant did not submit in this round, so it cannot be scored.
    error TaskLedgerNotSubmitted(uint256 taskId, uint256 round, address participant);
    /// @notice The participant appears twice in one finalization.
    error TaskLedgerDuplicateParticipant(uint256 taskId, uint256 round, address participant);
    /// @notice The scores add up to `totalScore` parts per million, more than the whole budget
    /// (1_000_000).
    error TaskLedgerBudgetExceeded(uint256 totalScore);
    /// @notice An array of a `RoundResult` has `actual` entries where `expected` are due: one
    /// score per contributor, one reason per rejected address.
    error TaskLedgerLengthMismatch(uint256 expected, uint256 actual);
    /// @notice A CID argument was empty.
    error TaskLedgerEmptyCid();
    /// @notice A `RoundResult` named no model hash (zero).
    error TaskLedgerEmptyModelHash();
    /// @notice `startRound` named a model other than the task's current global model.
    error TaskLedgerWrongModel(uint256 taskId, string modelCid);
    /// @notice The participant has no unclaimed rewards in this task.
    error TaskLedgerNothingToClaim(uint256 taskId, address participant);
    /// @notice The task was cancelled.
    error TaskLedgerTaskCancelled(uint256 taskId);
    /// @notice The round was closed without a result.
    error TaskLedgerRoundClosed(uint256 taskId, uint256 round);
    /// @notice The round would have `accepted` accepted updates; `required` are needed to finalize it.
    error TaskLedgerQuorumNotReached(uint256 taskId, uint256 round, uint256 accepted, uint32 required);
    /// @notice The round cannot be closed by this caller before block `allowedAfter` has passed.
    error TaskLedgerTooEarlyToClose(uint256 taskId, uint256 round, uint256 allowedAfter);
    /// @notice Only the task's creator or governance may do this.
    error TaskLedgerNotCreatorOrGovernance(uint256 taskId, address caller);
    /// @notice The creator proposed no such aggregator, or its delay runs until `readyTime`
    /// (a block timestamp).
    error TaskLedgerAggregatorNotReady(uint256 taskId, address aggregator, uint64 readyTime);
    /// @notice Creating the task would reserve more FLT than the token's cap leaves: `requested`
    /// on top of `available`.
    error TaskLedgerBudgetOverCap(uint256 requested, uint256 available);
    /// @notice `participant` already committed a watermark key for task `taskId`.
    error TaskLedgerWatermarkCommitted(uint256 taskId, address participant);
    /// @notice A watermark commitment must not be zero.
    error TaskLedgerEmptyCommitment();
    /// @notice Watermark keys are committed before round 1 starts, so that no key can be
    /// chosen to match a model the task has already trained; task `taskId` is at `round`.
    error TaskLedgerTrainingStarted(uint256 taskId, uint256 round);
    /// @notice Only the members' watermarks of a completed task can be claimed.
    error TaskLedgerTaskNotCompleted(uint256 taskId);
    /// @notice `participant` committed no watermark key to task `taskId`.
    error TaskLedgerNoWatermarkCommitment(uint256 taskId, address participant);
    /// @notice `participant` already claimed its watermark in task `taskId`.
    error TaskLedgerWatermarkClaimed(uint256 taskId, address participant);

    /// @notice Role allowed to create tasks (task budgets mint new FLT).
    function TASK_CREATOR_ROLE() external view returns (bytes32);

    /// @notice Seconds a task creator waits between proposing and installing a new aggregator.
    function AGGREGATOR_DELAY() external view returns (uint64);

    /// @notice Creates a task. Only `TASK_CREATOR_ROLE`, and not while blacklisted. Reserves the
    /// whole reward budget (`rewardPerRound * rounds`) under the token's cap.
    function createTask(TaskConfig calldata config) external returns (uint256 taskId);

    /// @notice The task's creator proposes `aggregator` as the task's next aggregator; it can
    /// install it with `replaceAggregator` after `AGGREGATOR_DELAY`. A new proposal
    /// replaces the previous one.
    function proposeAggregator(uint256 taskId, address aggregator) external;

    /// @notice Makes `aggregator` the task's aggregator, also for an open round. Governance at
    /// once; the task's creator only for the aggregator it proposed, once the delay has passed.
    function replaceAggregator(uint256 taskId, address aggregator) external;

    /// @notice Closes open round `roundNumber` without a new model and without rewards. The task's
    /// aggregator once the submission window has passed; anyone once one more window (the
    /// grace period) has passed.
    function closeRound(uint256 taskId, uint256 roundNumber) external;

    /// @notice Closes open round `roundNumber` without a new model and without rewards, and
    /// records the `rejected` as `finalizeRound` does (reputation, the blacklist, `evidenceCid`):
    /// for a round whose accepted updates fall short of the quorum. Only the task's aggregator,
    /// once the quorum has submitted or the window has passed; each rejected participant must
    /// have submitted to the round, once. The contract cannot tell how many updates the
    /// aggregator accepted: the evidence says, and an aggregator that closes rounds it could
    /// have finalized is governance's to replace (`replaceAggregator`).
    function closeRoundRejecting(
        uint256 taskId,
        uint256 roundNumber,
        address[] calldata rejected,
        uint8[] calldata reasons,
        string calldata evidenceCid
    ) external;

    /// @notice Cancels an open task (and closes its open round). What the task credited stays
    /// claimable; the rest of its budget is released. Its creator or governance.
    function cancelTask(uint256 taskId) external;

    /// @notice The caller joins task `taskId`. It must be registered and not blacklisted.
    function join(uint256 taskId) external;

    /// @notice Opens the next round on the current global model. Only the task's aggregator.
    /// @param globalModelCid CID of the task's current global model; checked against `globalModelHash`.
    /// @param workloadCid CID (or hash) of the per-participant workload assignment for this round.
    function startRound(uint256 taskId, string calldata globalModelCid, string calldata workloadCid)
        external
        returns (uint256 roundNumber);

    /// @notice Records the caller's update for the open round, once, within the window.
    /// @param privacyCid CID of the update's public privacy receipt (may be empty).
    function submitUpdate(
        uint256 taskId,
        uint256 roundNumber,
        string calldata updateCid,
        uint64 numSamples,
        uint64 trainingMillis,
        string calldata privacyCid
    ) external;

    /// @notice The caller, a member of task `taskId`, commits once, before round 1 starts, to
    /// its watermark key, so that a later ownership claim can be checked against a key fixed
    /// before any training.
    function commitWatermark(uint256 taskId, bytes32 commitment) external;

    /// @notice The watermark commitment of `participant` in task `taskId`, the block it was
    /// made in (zero when there is none) and whether it has been claimed.
    function watermarkCommitment(uint256 taskId, address participant)
        external
        view
        returns (bytes32 commitment, uint64 blockNumber, bool claimed);

    /// @notice The caller, a member in good standing that committed a watermark key to task
    /// `taskId`, claims once, after the task completed, that the final model carries its
    /// watermark, revealing the key in the document at `claimCid` (see `WatermarkClaimed`).
    /// The contract cannot read the model; what it guarantees is that the key was committed
    /// before the model existed and that each member claims once.
    function claimWatermark(uint256 taskId, string calldata claimCid) external;

    /// @notice Finalizes round `roundNumber` with at least `minParticipants` contributors (accepted
    /// updates):
    /// records the new global model (the keccak-256 of its CID;
    /// its plaintext hash is only emitted), credits the contributors in proportion to their
    /// scores (parts per million of the round budget, adding up to at most 1_000_000), moves
    /// reputations and counts rejections toward the blacklist. A contributor's reputation
    /// outcome is its share relative to an equal split, in basis points:
    /// `min(10_000, score * contributors / 100)`. Only the task's aggregator.
    function finalizeRound(uint256 taskId, uint256 roundNumber, RoundResult calldata result) external;

    /// @notice Mints to the caller the rewards it was credited in task `taskId` and has not
    /// claimed yet. Blacklisted addresses cannot claim.
    function claimRewards(uint256 taskId) external returns (uint256 amount);

    /// @notice Rewards of `participant` in task `taskId` credited but not claimed yet.
    function claimable(uint256 taskId, address participant) external view returns (uint256);

    /// @notice Number of tasks created; ids run from 1 to `taskCount()`.
    function taskCount() external view returns (uint256);

    /// @notice The stored task.
    function task(uint256 taskId) external view returns (Task memory);

    /// @notice The stored round.
    function round(uint256 taskId, uint256 roundNumber) external view returns (Round memory);

    /// @notice The standing of `participant` in task `taskId`.
    function membership(uint256 taskId, address participant) external view returns (Membership memory);

    /// @notice Every participant of task `taskId`, in joining order.
    function participants(uint256 taskId) external view returns (address[] memory);

    /// @notice What `account` earned in task `taskId` and what the task credited to all its
    /// contributors, claimed or not. `earned / totalRewarded` is the account's share of the
    /// task's rewards; both are final once the task is completed.
    function rewardShare(uint256 taskId, address account)
        external
        view
        returns (uint256 earned, uint256 totalRewarded);

    /// @notice Participants of task `taskId` that earned rewards, with the amounts.
    function contributions(uint256 taskId)
        external
        view
        returns (address[] memory accounts, uint256[] memory earned);
}
