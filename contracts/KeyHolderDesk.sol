// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IKeyHolderDesk} from "./interfaces/IKeyHolderDesk.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";

/// @title KeyHolderDesk
/// @notice Decryption requests and answers between the aggregator and the key holder of
/// homomorphic FairFL tasks.
/// @dev A contract of its own beside the ledger, which it only reads: tasks, aggregators and
/// rounds stay the ledger's. The CIDs live in events; storage keeps what the desk must check
/// later (who may answer, what was asked and answered), one slot per request.
contract KeyHolderDesk is IKeyHolderDesk {
    uint8 private constant _HOMOMORPHIC = 4;

    ITaskLedger private immutable _ledger;

    uint256 private _requestCount;
    mapping(uint256 requestId => Request) private _requests;
    mapping(uint256 taskId => mapping(uint256 round => mapping(DecryptionKind kind => uint256 requestId)))
        private _requestIds;
    mapping(uint256 taskId => address) private _keyHolders;

    constructor(ITaskLedger ledger_) {
        _ledger = ledger_;
    }

    /// @inheritdoc IKeyHolderDesk
    function setKeyHolder(uint256 taskId, address keyHolder) external {
        ITaskLedger.Task memory t = _homomorphicTask(taskId);
        if (msg.sender != t.creator) revert KeyHolderDeskNotCreator(taskId, msg.sender);
        if (t.status != ITaskLedger.TaskStatus.Open || t.currentRound != 0) revert KeyHolderDeskTaskStarted(taskId);
        if (keyHolder == address(0)) revert KeyHolderDeskInvalidKeyHolder();
        _keyHolders[taskId] = keyHolder;
        emit KeyHolderSet(taskId, keyHolder);
    }

    /// @inheritdoc IKeyHolderDesk
    function requestDecryption(uint256 taskId, uint256 round, DecryptionKind kind, string calldata documentCid)
        external
        returns (uint256 requestId)
    {
        ITaskLedger.Task memory t = _homomorphicTask(taskId);
        if (msg.sender != t.aggregator) revert KeyHolderDeskNotAggregator(taskId, msg.sender);
        bool open = round != 0 && round == t.currentRound
            && _ledger.round(taskId, round).status == ITaskLedger.RoundStatus.Open;
        if (!open) revert KeyHolderDeskRoundNotOpen(taskId, round);
        if (bytes(documentCid).length == 0) revert KeyHolderDeskEmptyCid();
        mapping(DecryptionKind kind => uint256 requestId) storage ids = _requestIds[taskId][round];
        uint256 existing = ids[kind];
        if (existing != 0) revert KeyHolderDeskAlreadyRequested(taskId, round, kind, existing);
        if (kind == DecryptionKind.Aggregate) {
            uint256 scalars = ids[DecryptionKind.Scalars];
            if (scalars == 0 || !_requests[scalars].answered) revert KeyHolderDeskScalarsNotAnswered(taskId, round);
        }
        requestId = ++_requestCount;
        ids[kind] = requestId;
        // Both casts are safe: the ledger numbers tasks from 1 and rounds as uint32.
        _requests[requestId] = Request({
            taskId: uint64(taskId),
            round: uint32(round),
            kind: kind,
            answered: false,
            requestedBlock: uint64(block.number),
            answeredBlock: 0
        });
        emit DecryptionRequested(requestId, taskId, round, kind, msg.sender, documentCid);
    }

    /// @inheritdoc IKeyHolderDesk
    function answerDecryption(uint256 requestId, string calldata resultCid) external {
        Request storage r = _requests[requestId];
        if (r.requestedBlock == 0) revert KeyHolderDeskUnknownRequest(requestId);
        uint256 taskId = r.taskId;
        if (msg.sender != _keyHolder(taskId)) revert KeyHolderDeskNotKeyHolder(taskId, msg.sender);
        if (r.answered) revert KeyHolderDeskAlreadyAnswered(requestId);
        if (bytes(resultCid).length == 0) revert KeyHolderDeskEmptyCid();
        r.answered = true;
        r.answeredBlock = uint64(block.number);
        emit DecryptionAnswered(requestId, taskId, r.round, r.kind, msg.sender, resultCid);
    }

    /// @inheritdoc IKeyHolderDesk
    function keyHolderOf(uint256 taskId) external view returns (address) {
        ITaskLedger.Task memory t = _ledger.task(taskId);
        if (t.trainingMode & _HOMOMORPHIC == 0) return address(0); // unknown tasks too: mode 0
        address named = _keyHolders[taskId];
        return named == address(0) ? t.creator : named;
    }

    /// @inheritdoc IKeyHolderDesk
    function request(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    /// @inheritdoc IKeyHolderDesk
    function requestOf(uint256 taskId, uint256 round, DecryptionKind kind) external view returns (uint256) {
        return _requestIds[taskId][round][kind];
    }

    /// @inheritdoc IKeyHolderDesk
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @inheritdoc IKeyHolderDesk
    function ledger() external view returns (address) {
        return address(_ledger);
    }

    function _keyHolder(uint256 taskId) private view returns (address holder) {
        holder = _keyHolders[taskId];
        if (holder == address(0)) holder = _ledger.task(taskId).creator;
    }

    function _homomorphicTask(uint256 taskId) private view returns (ITaskLedger.Task memory t) {
        t = _ledger.task(taskId);
        if (t.status == ITaskLedger.TaskStatus.None) revert KeyHolderDeskUnknownTask(taskId);
        if (t.trainingMode & _HOMOMORPHIC == 0) revert KeyHolderDeskNotHomomorphic(taskId);
    }
}
