// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Key holder desk: the public channel between a homomorphic task's aggregator and
/// its key holder
/// @notice In a task whose training mode includes HOMOMORPHIC (4), participants encrypt their
/// updates under the key holder's public CKKS context and the aggregator computes on the
/// ciphertexts; only the key holder can decrypt. Per round, the aggregator asks it to decrypt
/// exactly two documents, in this order: the per-update scalars of the robust rule
/// (`Scalars`), then the trust-weighted aggregate (`Aggregate`); the key holder answers each
/// once with the CID of the decrypted result. Every request and answer is an event, so anyone
/// can audit what was decrypted for whom and when.
///
/// The key holder is the task's creator unless the creator names another account before the
/// first round opens (the account participants encrypted for cannot change mid-task).
/// Requests are read against the task ledger: only the task's current aggregator may ask,
/// only for the round that is open, and only once per round and kind, which bounds what an
/// aggregator can have decrypted to what the protocol needs.
interface IKeyHolderDesk {
    /// @notice What a request asks the key holder to decrypt.
    enum DecryptionKind {
        Scalars,
        Aggregate
    }

    /// @notice One decryption request as stored (one slot). Task ids fit in 64 bits: the
    /// ledger numbers them from 1.
    /// @param taskId The task.
    /// @param round The round it was made in.
    /// @param kind Scalars or aggregate.
    /// @param answered Whether the key holder answered it.
    /// @param requestedBlock The block of the request.
    /// @param answeredBlock The block of the answer (0 until answered).
    struct Request {
        uint64 taskId;
        uint32 round;
        DecryptionKind kind;
        bool answered;
        uint64 requestedBlock;
        uint64 answeredBlock;
    }

    /// @notice The creator of task `taskId` named `keyHolder` its key holder.
    event KeyHolderSet(uint256 indexed taskId, address indexed keyHolder);
    /// @notice The aggregator of task `taskId` asked in round `round` for the decryption of
    /// what the request document at `documentCid` describes.
    event DecryptionRequested(
        uint256 indexed requestId,
        uint256 indexed taskId,
        uint256 indexed round,
        DecryptionKind kind,
        address aggregator,
        string documentCid
    );
    /// @notice The key holder answered request `requestId` with the result document at
    /// `resultCid` (the decrypted values, or why it refused).
    event DecryptionAnswered(
        uint256 indexed requestId,
        uint256 indexed taskId,
        uint256 indexed round,
        DecryptionKind kind,
        address keyHolder,
        string resultCid
    );

    /// @notice No task with this id.
    error KeyHolderDeskUnknownTask(uint256 taskId);
    /// @notice The task does not aggregate homomorphically (its training mode lacks 4).
    error KeyHolderDeskNotHomomorphic(uint256 taskId);
    /// @notice Only the task's creator may name its key holder.
    error KeyHolderDeskNotCreator(uint256 taskId, address caller);
    /// @notice The key holder can be named only while the task is open and before round 1.
    error KeyHolderDeskTaskStarted(uint256 taskId);
    /// @notice The key holder must not be the zero address.
    error KeyHolderDeskInvalidKeyHolder();
    /// @notice Only the task's aggregator may request decryptions.
    error KeyHolderDeskNotAggregator(uint256 taskId, address caller);
    /// @notice `round` is not the task's open round.
    error KeyHolderDeskRoundNotOpen(uint256 taskId, uint256 round);
    /// @notice A CID argument was empty.
    error KeyHolderDeskEmptyCid();
    /// @notice The round already has a request of this kind (`requestId`).
    error KeyHolderDeskAlreadyRequested(uint256 taskId, uint256 round, DecryptionKind kind, uint256 requestId);
    /// @notice The aggregate can be requested only once the round's scalars were answered.
    error KeyHolderDeskScalarsNotAnswered(uint256 taskId, uint256 round);
    /// @notice No request with this id.
    error KeyHolderDeskUnknownRequest(uint256 requestId);
    /// @notice Only the task's key holder may answer.
    error KeyHolderDeskNotKeyHolder(uint256 taskId, address caller);
    /// @notice The request was answered already.
    error KeyHolderDeskAlreadyAnswered(uint256 requestId);

    /// @notice The task's creator names `keyHolder` as the task's key holder, while the task
    /// is open and before its first round; it may correct it until then.
    function setKeyHolder(uint256 taskId, address keyHolder) external;

    /// @notice The task's aggregator asks the key holder to decrypt, in the open round
    /// `round`, the document that the request document at `documentCid` names. Once per
    /// round and kind; the aggregate only after the round's scalars were answered.
    function requestDecryption(uint256 taskId, uint256 round, DecryptionKind kind, string calldata documentCid)
        external
        returns (uint256 requestId);

    /// @notice The task's key holder answers request `requestId`, once, with the CID of its
    /// result document.
    function answerDecryption(uint256 requestId, string calldata resultCid) external;

    /// @notice The key holder of task `taskId`: the account its creator named, else the
    /// creator; zero for a task that is unknown or not homomorphic.
    function keyHolderOf(uint256 taskId) external view returns (address);

    /// @notice The stored request `requestId` (all zero when there is none).
    function request(uint256 requestId) external view returns (Request memory);

    /// @notice The id of round `round`'s request of kind `kind` in task `taskId` (0: none).
    function requestOf(uint256 taskId, uint256 round, DecryptionKind kind) external view returns (uint256);

    /// @notice Number of requests made; ids run from 1 to `requestCount()`.
    function requestCount() external view returns (uint256);

    /// @notice The task ledger this desk reads tasks and rounds from.
    function ledger() external view returns (address);
}
