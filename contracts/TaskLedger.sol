// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IFairToken} from "./interfaces/IFairToken.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";
import {Governed} from "./utils/Governed.sol";

/// @title TaskLedger
/// @notice Tasks, rounds, uploads and aggregations of FairFL, with rewards and reputation.
/// @dev Per-upload data (CID, samples, time) lives in events only; storage keeps what the
/// contract must check later, packed so that `submitUpdate` touches a single slot of the
/// participant and one of the round, and `finalizeRound` one slot per settled participant
/// here and one in the registry. Rewards are credited here and minted on `claimRewards`.
/// Governance is whoever holds the registry's `GOVERNANCE_ROLE`, so there is one list of it.
contract TaskLedger is ITaskLedger, Governed {
    /// @inheritdoc ITaskLedger
    bytes32 public constant TASK_CREATOR_ROLE = keccak256("TASK_CREATOR_ROLE");
    /// @inheritdoc ITaskLedger
    uint64 public constant AGGREGATOR_DELAY = 1 days;

    uint8 private constant _MODE_MASK = 0x0f; // DP | PRUNING | HOMOMORPHIC | WATERMARK
    /// @dev Reputation outcomes are basis points, as the registry expects.
    uint256 private constant _MAX_BPS = 10_000;
    /// @dev Scores are parts per million of the round budget.
    uint256 private constant _MAX_PPM = 1_000_000;

    IFairToken private immutable _token;
    IParticipantRegistry private immutable _registry;

    uint256 private _taskCount;
    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => mapping(uint256 round => Round)) private _rounds;
    mapping(uint256 taskId => mapping(address participant => Membership)) private _members;
    mapping(uint256 taskId => address[]) private _participants;
    mapping(uint256 taskId => mapping(address participant => uint256)) private _claimed;
    mapping(uint256 taskId => ProposedAggregator) private _proposed;
    mapping(uint256 taskId => mapping(address participant => WatermarkCommitment)) private _watermarks;
    /// @dev FLT reserved under the token's cap and not minted yet: the budgets of open tasks
    /// and the unclaimed credits of ended ones.
    uint256 private _reserved;

    struct ProposedAggregator {
        address account;
        uint64 readyTime;
    }

    struct WatermarkCommitment {
        bytes32 commitment;
        uint64 blockNumber;
        bool claimed;
    }

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `TASK_CREATOR_ROLE`.
    /// @param token Reward token; this contract needs its `MINTER_ROLE`.
    /// @param registry Participant registry; this contract needs its `LEDGER_ROLE`.
    constructor(address admin, IFairToken token, IParticipantRegistry registry) Governed(admin) {
        _grantRole(TASK_CREATOR_ROLE, admin);
        _token = token;
        _registry = registry;
    }

    /// @dev A blacklisted aggregator can neither open nor close rounds; governance or the
    /// task's creator replaces it (`replaceAggregator`).
    modifier onlyAggregator(uint256 taskId) {
        if (_tasks[taskId].aggregator != msg.sender) {
            if (_tasks[taskId].status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
            revert TaskLedgerNotAggregator(taskId, msg.sender);
        }
        if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
        _;
    }

    /// @inheritdoc ITaskLedger
    function createTask(TaskConfig calldata config)
        external
        onlyRole(TASK_CREATOR_ROLE)
        returns (uint256 taskId)
    {
        if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
        _validate(config);
        if (_registry.isBlacklisted(config.aggregator)) revert TaskLedgerBlacklisted(config.aggregator);
        _reserve(uint256(config.rewardPerRound) * config.rounds);
        taskId = ++_taskCount;
        Task storage t = _tasks[taskId];
        t.creator = msg.sender;
        t.aggregator = config.aggregator;
        t.rounds = config.rounds;
        t.minParticipants = config.minParticipants;
        t.submissionWindow = config.submissionWindow;
        t.trainingMode = config.trainingMode;
        t.status = TaskStatus.Open;
        t.rewardPerRound = uint96(config.rewardPerRound); // bounded by _validate
        t.globalModelHash = keccak256(bytes(config.modelCid));
        t.specCid = config.specCid;
        t.metric = config.metric;
        emit TaskCreated(taskId, msg.sender, config.aggregator, config);
    }

    /// @inheritdoc ITaskLedger
    function join(uint256 taskId) external {
        Task storage t = _openTask(taskId);
        _requireActive(msg.sender);
        Membership storage m = _members[taskId][msg.sender];
        if (m.joined) revert TaskLedgerAlreadyJoined(taskId, msg.sender);
        m.joined = true;
        _participants[taskId].push(msg.sender);
        uint32 count = ++t.participantCount;
        emit ParticipantJoined(taskId, msg.sender, count);
    }

    /// @inheritdoc ITaskLedger
    function startRound(uint256 taskId, string calldata globalModelCid, string calldata workloadCid)
        external
        onlyAggregator(taskId)
        returns (uint256 roundNumber)
    {
        Task storage t = _openTask(taskId);
        if (bytes(workloadCid).length == 0) revert TaskLedgerEmptyCid();
        if (keccak256(bytes(globalModelCid)) != t.globalModelHash) revert TaskLedgerWrongModel(taskId, globalModelCid);
        if (t.participantCount < t.minParticipants) {
            revert TaskLedgerNotEnoughParticipants(taskId, t.participantCount, t.minParticipants);
        }
        uint32 current = t.currentRound;
        if (current != 0 && _rounds[taskId][current].status == RoundStatus.Open) {
            revert TaskLedgerRoundStillOpen(taskId, current);
        }
        roundNumber = current + 1;
        t.currentRound = uint32(roundNumber);
        uint64 deadline = uint64(block.number) + t.submissionWindow;
        _rounds[taskId][roundNumber] = Round({
            startBlock: uint64(block.number),
            deadlineBlock: deadline,
            finalizedBlock: 0,
            submissions: 0,
            status: RoundStatus.Open
        });
        emit RoundStarted(
            taskId, roundNumber, globalModelCid, workloadCid, deadline, t.trainingMode, uint64(block.timestamp)
        );
    }

    /// @inheritdoc ITaskLedger
    function submitUpdate(
        uint256 taskId,
        uint256 roundNumber,
        string calldata updateCid,
        uint64 numSamples,
        uint64 trainingMillis,
        string calldata privacyCid
    ) external {
        Task storage t = _tasks[taskId];
        if (t.status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
        Round storage r = _openRound(taskId, t.currentRound, roundNumber);
        if (block.number > r.deadlineBlock) revert TaskLedgerSubmissionClosed(taskId, roundNumber, r.deadlineBlock);
        if (bytes(updateCid).length == 0) revert TaskLedgerEmptyCid();
        Membership storage m = _members[taskId][msg.sender];
        if (!m.joined) revert TaskLedgerNotJoined(taskId, msg.sender);
        if (m.lastSubmittedRound == roundNumber) revert TaskLedgerAlreadySubmitted(taskId, roundNumber, msg.sender);
        if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
        m.lastSubmittedRound = uint32(roundNumber);
        r.submissions += 1;
        emit UpdateSubmitted(
            taskId,
            roundNumber,
            msg.sender,
            updateCid,
            numSamples,
            trainingMillis,
            t.trainingMode,
            uint64(block.timestamp),
            privacyCid
        );
    }

    /// @inheritdoc ITaskLedger
    function commitWatermark(uint256 taskId, bytes32 commitment) external {
        Task storage t = _openTask(taskId);
        if (t.currentRound != 0) revert TaskLedgerTrainingStarted(taskId, t.currentRound);
        if (commitment == bytes32(0)) revert TaskLedgerEmptyCommitment();
        if (!_members[taskId][msg.sender].joined) revert TaskLedgerNotJoined(taskId, msg.sender);
        _requireActive(msg.sender);
        WatermarkCommitment storage w = _watermarks[taskId][msg.sender];
        if (w.commitment != bytes32(0)) revert TaskLedgerWatermarkCommitted(taskId, msg.sender);
        w.commitment = commitment;
        w.blockNumber = uint64(block.number);
        emit WatermarkCommitted(taskId, msg.sender, commitment);
    }

    /// @inheritdoc ITaskLedger
    function watermarkCommitment(uint256 taskId, address participant)
        external
        view
        returns (bytes32 commitment, uint64 blockNumber, bool claimed)
    {
        WatermarkCommitment storage w = _watermarks[taskId][participant];
        return (w.commitment, w.blockNumber, w.claimed);
    }

    /// @inheritdoc ITaskLedger
    function claimWatermark(uint256 taskId, string calldata claimCid) external {
        TaskStatus status = _tasks[taskId].status;
        if (status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
        if (status != TaskStatus.Completed) revert TaskLedgerTaskNotCompleted(taskId);
        if (bytes(claimCid).length == 0) revert TaskLedgerEmptyCid();
        _requireActive(msg.sender);
        WatermarkCommitment storage w = _watermarks[taskId][msg.sender];
        if (w.commitment == bytes32(0)) revert TaskLedgerNoWatermarkCommitment(taskId, msg.sender);
        if (w.claimed) revert TaskLedgerWatermarkClaimed(taskId, msg.sender);
        w.claimed = true;
        emit WatermarkClaimed(taskId, msg.sender, w.commitment, claimCid);
    }

    /// @inheritdoc ITaskLedger
    function finalizeRound(uint256 taskId, uint256 roundNumber, RoundResult calldata result)
        external
        onlyAggregator(taskId)
    {
        Task storage t = _tasks[taskId];
        Round storage r = _openRound(taskId, t.currentRound, roundNumber);
        // Each contributor is checked to have submitted to this round, once (`_settle`).
        if (result.contributors.length < t.minParticipants) {
            revert TaskLedgerQuorumNotReached(taskId, roundNumber, result.contributors.length, t.minParticipants);
        }
        if (bytes(result.newModelCid).length == 0 || bytes(result.evidenceCid).length == 0) {
            revert TaskLedgerEmptyCid();
        }
        if (result.modelHash == bytes32(0)) revert TaskLedgerEmptyModelHash();
        if (result.contributors.length != result.scoresPpm.length) {
            revert TaskLedgerLengthMismatch(result.contributors.length, result.scoresPpm.length);
        }
        if (result.rejected.length != result.reasons.length) {
            revert TaskLedgerLengthMismatch(result.rejected.length, result.reasons.length);
        }

        (uint256[] memory rewards, uint16[] memory outcomes, uint256 credited) =
            _settleContributors(taskId, roundNumber, t.rewardPerRound, result);
        for (uint256 i; i < result.rejected.length; ++i) {
            _settle(taskId, roundNumber, result.rejected[i]).rejectedRounds += 1;
        }

        r.status = RoundStatus.Finalized;
        r.finalizedBlock = uint64(block.number);
        // Cannot overflow: credited <= rewardPerRound and createTask bounds rewardPerRound * rounds.
        t.totalRewarded += uint96(credited);
        uint32 finalized = ++t.finalizedRounds;
        t.globalModelHash = keccak256(bytes(result.newModelCid));
        // `result.modelHash` is emitted, not stored: a fresh slot (22,100 gas) would push a
        // one-contributor round over its 100k budget, and nothing on chain reads it back.
        emit RoundFinalized(taskId, roundNumber, msg.sender, result, rewards, uint64(block.timestamp));
        if (finalized == t.rounds) {
            t.status = TaskStatus.Completed;
            _releaseUnspent(t);
            emit TaskCompleted(taskId, result.newModelCid, t.totalRewarded);
        }

        // Interaction last; the registry is our own contract, fixed at construction.
        _registry.recordRound(
            IParticipantRegistry.RoundRecord({
                taskId: taskId,
                round: roundNumber,
                aggregator: msg.sender,
                evidenceCid: result.evidenceCid,
                accepted: result.contributors,
                outcomesBps: outcomes,
                rejected: result.rejected,
                reasons: result.reasons
            })
        );
    }

    /// @inheritdoc ITaskLedger
    function proposeAggregator(uint256 taskId, address aggregator) external {
        Task storage t = _openTask(taskId);
        if (msg.sender != t.creator) revert TaskLedgerNotCreatorOrGovernance(taskId, msg.sender);
        if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
        _checkAggregator(aggregator);
        uint64 ready = uint64(block.timestamp) + AGGREGATOR_DELAY;
        _proposed[taskId] = ProposedAggregator(aggregator, ready);
        emit AggregatorProposed(taskId, aggregator, ready);
    }

    /// @inheritdoc ITaskLedger
    function replaceAggregator(uint256 taskId, address aggregator) external {
        Task storage t = _openTask(taskId);
        if (!_isGovernance(msg.sender)) {
            if (msg.sender != t.creator) revert TaskLedgerNotCreatorOrGovernance(taskId, msg.sender);
            if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
            ProposedAggregator memory p = _proposed[taskId];
            if (p.account != aggregator || p.account == address(0) || block.timestamp < p.readyTime) {
                revert TaskLedgerAggregatorNotReady(taskId, aggregator, p.readyTime);
            }
        }
        _checkAggregator(aggregator);
        delete _proposed[taskId];
        address previous = t.aggregator;
        t.aggregator = aggregator;
        emit AggregatorReplaced(taskId, previous, aggregator, msg.sender);
    }

    /// @inheritdoc ITaskLedger
    function closeRound(uint256 taskId, uint256 roundNumber) external {
        Task storage t = _tasks[taskId];
        if (t.status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
        Round storage r = _openRound(taskId, t.currentRound, roundNumber);
        uint256 allowedAfter = uint256(r.deadlineBlock);
        bool byAggregator = msg.sender == t.aggregator && !_registry.isBlacklisted(msg.sender);
        if (!byAggregator) allowedAfter += t.submissionWindow; // the aggregator's grace period
        if (block.number <= allowedAfter) revert TaskLedgerTooEarlyToClose(taskId, roundNumber, allowedAfter);
        _close(taskId, roundNumber, r);
    }

    /// @inheritdoc ITaskLedger
    function closeRoundRejecting(
        uint256 taskId,
        uint256 roundNumber,
        address[] calldata rejected,
        uint8[] calldata reasons,
        string calldata evidenceCid
    ) external onlyAggregator(taskId) {
        Task storage t = _tasks[taskId];
        Round storage r = _openRound(taskId, t.currentRound, roundNumber);
        // As early as finalizeRound once the quorum has submitted; otherwise, as closeRound,
        // only once the window has passed (members may still submit until then).
        if (r.submissions < t.minParticipants && block.number <= r.deadlineBlock) {
            revert TaskLedgerTooEarlyToClose(taskId, roundNumber, r.deadlineBlock);
        }
        if (bytes(evidenceCid).length == 0) revert TaskLedgerEmptyCid();
        if (rejected.length != reasons.length) revert TaskLedgerLengthMismatch(rejected.length, reasons.length);
        for (uint256 i; i < rejected.length; ++i) {
            _settle(taskId, roundNumber, rejected[i]).rejectedRounds += 1;
        }
        _close(taskId, roundNumber, r);
        // Interaction last, as in finalizeRound.
        _registry.recordRound(
            IParticipantRegistry.RoundRecord({
                taskId: taskId,
                round: roundNumber,
                aggregator: msg.sender,
                evidenceCid: evidenceCid,
                accepted: new address[](0),
                outcomesBps: new uint16[](0),
                rejected: rejected,
                reasons: reasons
            })
        );
    }

    /// @inheritdoc ITaskLedger
    function cancelTask(uint256 taskId) external {
        Task storage t = _openTask(taskId);
        if (!_isGovernance(msg.sender)) {
            if (msg.sender != t.creator) revert TaskLedgerNotCreatorOrGovernance(taskId, msg.sender);
            if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
        }
        uint32 current = t.currentRound;
        if (current != 0 && _rounds[taskId][current].status == RoundStatus.Open) {
            _close(taskId, current, _rounds[taskId][current]);
        }
        t.status = TaskStatus.Cancelled;
        _releaseUnspent(t);
        emit TaskCancelled(taskId, msg.sender, t.totalRewarded);
    }

    /// @inheritdoc ITaskLedger
    function claimRewards(uint256 taskId) external returns (uint256 amount) {
        if (_tasks[taskId].status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
        if (_registry.isBlacklisted(msg.sender)) revert TaskLedgerBlacklisted(msg.sender);
        uint256 earned = _members[taskId][msg.sender].earned;
        amount = earned - _claimed[taskId][msg.sender];
        if (amount == 0) revert TaskLedgerNothingToClaim(taskId, msg.sender);
        // Effects before the mint, so a re-entrant claim would find nothing left.
        _claimed[taskId][msg.sender] = earned;
        _reserved -= amount;
        emit RewardsClaimed(taskId, msg.sender, amount);
        _token.mint(msg.sender, amount);
    }

    /// @inheritdoc ITaskLedger
    function claimable(uint256 taskId, address participant) external view returns (uint256) {
        return _members[taskId][participant].earned - _claimed[taskId][participant];
    }

    /// @inheritdoc ITaskLedger
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @inheritdoc ITaskLedger
    function task(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    /// @inheritdoc ITaskLedger
    function round(uint256 taskId, uint256 roundNumber) external view returns (Round memory) {
        return _rounds[taskId][roundNumber];
    }

    /// @inheritdoc ITaskLedger
    function membership(uint256 taskId, address participant) external view returns (Membership memory) {
        return _members[taskId][participant];
    }

    /// @inheritdoc ITaskLedger
    function participants(uint256 taskId) external view returns (address[] memory) {
        return _participants[taskId];
    }

    /// @inheritdoc ITaskLedger
    function rewardShare(uint256 taskId, address account)
        external
        view
        returns (uint256 earned, uint256 totalRewarded)
    {
        return (_members[taskId][account].earned, _tasks[taskId].totalRewarded);
    }

    /// @inheritdoc ITaskLedger
    function contributions(uint256 taskId)
        external
        view
        returns (address[] memory accounts, uint256[] memory earned)
    {
        address[] storage all = _participants[taskId];
        uint256 count = 0;
        for (uint256 i; i < all.length; ++i) {
            if (_members[taskId][all[i]].earned != 0) ++count;
        }
        accounts = new address[](count);
        earned = new uint256[](count);
        uint256 j = 0;
        for (uint256 i; i < all.length; ++i) {
            uint96 amount = _members[taskId][all[i]].earned;
            if (amount != 0) {
                accounts[j] = all[i];
                earned[j] = amount;
                ++j;
            }
        }
    }

    /// @dev Rewards are shares of the round budget in parts per million. Reputation outcomes are
    /// the shares relative to an equal split, in basis points, capped at a full 10_000 (reached
    /// with at least 1/n of the budget): `(score / 1_000_000) / (1 / n) * 10_000 = score * n / 100`.
    function _settleContributors(
        uint256 taskId,
        uint256 roundNumber,
        uint256 rewardPerRound,
        RoundResult calldata result
    ) private returns (uint256[] memory rewards, uint16[] memory outcomes, uint256 credited) {
        uint256 n = result.contributors.length;
        rewards = new uint256[](n);
        outcomes = new uint16[](n);
        uint256 totalScore = 0;
        for (uint256 i; i < n; ++i) {
            uint256 score = result.scoresPpm[i];
            totalScore += score;
            // Checked before the reward is computed, so that reward <= rewardPerRound below.
            if (totalScore > _MAX_PPM) revert TaskLedgerBudgetExceeded(_totalScore(result.scoresPpm));
            uint256 reward = (rewardPerRound * score) / _MAX_PPM;
            Membership storage m = _settle(taskId, roundNumber, result.contributors[i]);
            m.acceptedRounds += 1;
            // Cannot overflow: reward <= rewardPerRound, each participant is settled at most
            // once per round, and createTask bounds rewardPerRound * rounds by uint96.
            m.earned += uint96(reward);
            rewards[i] = reward;
            credited += reward;
            uint256 outcome = (score * n) / (_MAX_PPM / _MAX_BPS);
            outcomes[i] = uint16(outcome > _MAX_BPS ? _MAX_BPS : outcome);
        }
    }

    /// @dev Only on the revert path, so that the error reports the sum of all the scores.
    function _totalScore(uint32[] calldata scoresPpm) private pure returns (uint256 total) {
        for (uint256 i; i < scoresPpm.length; ++i) {
            total += scoresPpm[i];
        }
    }

    function _settle(uint256 taskId, uint256 roundNumber, address participant)
        private
        returns (Membership storage m)
    {
        m = _members[taskId][participant];
        if (m.lastSubmittedRound != roundNumber) revert TaskLedgerNotSubmitted(taskId, roundNumber, participant);
        if (m.lastSettledRound == roundNumber) revert TaskLedgerDuplicateParticipant(taskId, roundNumber, participant);
        m.lastSettledRound = uint32(roundNumber);
    }

    function _openTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
        if (t.status == TaskStatus.Completed) revert TaskLedgerTaskCompleted(taskId);
        if (t.status == TaskStatus.Cancelled) revert TaskLedgerTaskCancelled(taskId);
    }

    function _close(uint256 taskId, uint256 roundNumber, Round storage r) private {
        r.status = RoundStatus.Closed;
        r.finalizedBlock = uint64(block.number);
        emit RoundClosed(taskId, roundNumber, msg.sender, r.submissions);
    }

    /// @dev Reserves `budget` FLT under the token's cap; supply minted by anyone else counts.
    function _reserve(uint256 budget) private {
        uint256 supplyCap = _token.cap();
        uint256 taken = _token.totalSupply() + _reserved;
        uint256 available = supplyCap > taken ? supplyCap - taken : 0;
        if (budget > available) revert TaskLedgerBudgetOverCap(budget, available);
        _reserved += budget;
    }

    /// @dev A task that ends keeps reserved only what it credited and is not claimed yet.
    function _releaseUnspent(Task storage t) private {
        _reserved -= uint256(t.rewardPerRound) * t.rounds - t.totalRewarded;
    }

    function _checkAggregator(address aggregator) private view {
        if (aggregator == address(0)) revert TaskLedgerInvalidConfig("aggregator");
        if (_registry.isBlacklisted(aggregator)) revert TaskLedgerBlacklisted(aggregator);
    }

    function _isGovernance(address account) private view returns (bool) {
        return IAccessControl(address(_registry)).hasRole(_registry.GOVERNANCE_ROLE(), account);
    }

    function _openRound(uint256 taskId, uint256 current, uint256 roundNumber)
        private
        view
        returns (Round storage r)
    {
        if (roundNumber != current || current == 0) revert TaskLedgerWrongRound(taskId, roundNumber, current);
        r = _rounds[taskId][roundNumber];
        if (r.status == RoundStatus.Finalized) revert TaskLedgerRoundAlreadyFinalized(taskId, roundNumber);
        if (r.status == RoundStatus.Closed) revert TaskLedgerRoundClosed(taskId, roundNumber);
    }

    function _requireActive(address account) private view {
        IParticipantRegistry.Participant memory p = _registry.participant(account);
        if (p.blacklisted) revert TaskLedgerBlacklisted(account);
        if (!p.registered) revert TaskLedgerNotRegistered(account);
    }

    function _validate(TaskConfig calldata config) private pure {
        if (bytes(config.modelCid).length == 0) revert TaskLedgerInvalidConfig("modelCid");
        if (bytes(config.specCid).length == 0) revert TaskLedgerInvalidConfig("specCid");
        if (bytes(config.metric).length == 0) revert TaskLedgerInvalidConfig("metric");
        if (config.aggregator == address(0)) revert TaskLedgerInvalidConfig("aggregator");
        if (config.rounds == 0) revert TaskLedgerInvalidConfig("rounds");
        if (config.minParticipants == 0) revert TaskLedgerInvalidConfig("minParticipants");
        if (config.submissionWindow == 0) revert TaskLedgerInvalidConfig("submissionWindow");
        if (config.trainingMode & ~_MODE_MASK != 0) revert TaskLedgerInvalidConfig("trainingMode");
        if (config.rewardPerRound > type(uint96).max / config.rounds) {
            revert TaskLedgerInvalidConfig("rewardPerRound");
        }
    }
}
