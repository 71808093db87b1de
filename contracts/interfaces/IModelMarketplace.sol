// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Model marketplace
/// @notice Sells the final models of completed FairFL tasks for any ERC-20 (with or without
/// EIP-2612 permit), and shares the revenue among the task's contributors.
///
/// A listing points to the encrypted weights and a metadata document (IPFS CIDs) and commits to
/// the plaintext with `plaintextHash`. Only the task's creator lists, once per task. The
/// contract does not check `plaintextHash`: clients compare it with the `modelHash` of the
/// task's last `ITaskLedger.RoundFinalized` and refuse to buy a listing that does not match.
///
/// Escrow. `buy` moves the price into the marketplace and opens a `Pending` purchase that names
/// the buyer's X25519 public key (`buyerKey`). The seller answers with `deliverKey`: the content
/// key sealed to that public key is published in `KeyDelivered`, the purchase becomes
/// `Delivered` and its price moves from the listing's `escrowed` to its `revenue`. The seller
/// names the key it sealed to, and the delivery reverts unless it is still the purchase's key:
/// a delivery racing an `updateBuyerKey` must not release the escrow for a key the buyer can no
/// longer open. A delivered purchase's `buyerKey` is final, so it is the key the published
/// content key was sealed to. If no key is delivered by `deadlineBlock` (`block.number +
/// deliveryWindow()` at purchase or at the last `updateBuyerKey`), the buyer takes its money back
/// with `refund` from the next block on; the purchase is then `Refunded` and the buyer may buy
/// again. So every token a buyer pays is always in exactly one place: in escrow, in the model's
/// revenue, or back with the buyer.
///
/// Lazy shares. Payees are not stored: the payees of a model are the contributors of its task,
/// weighted by what they earned in the ledger (`ITaskLedger.rewardShare`, fixed once the task
/// is completed). A payee's entitlement is `revenue * earned / totalRewarded`, rounded down,
/// computed when it is read; `withdraw` pays the entitlement minus what was withdrawn before.
/// Listing and buying therefore cost the same whatever the number of contributors.
///
/// Rounding. Each entitlement is rounded down on its own, so the entitlements add up to at most
/// `revenue`, and less than one base unit per payee stays unallocated in the marketplace
/// (at most `payees - 1` units per model). No payee receives the remainder: equal contributors
/// get equal amounts.
///
/// Blacklist and pause. A blacklisted address can neither list, buy, change a price nor
/// withdraw; its revenue share stays allocated to it and can be withdrawn if governance lifts the
/// blacklisting. What serves buyers who already paid is never blocked: the seller delivers keys
/// and a buyer updates its key or takes a refund while either is blacklisted and while the
/// marketplace is paused. Pausing stops listing and buying only.
interface IModelMarketplace {
    /// @notice Where a buyer's purchase of one model stands.
    /// @dev `None`: never bought. `Pending`: paid, the price is in escrow, waiting for the key.
    /// `Delivered`: the key was published and the price counts as revenue. `Refunded`: the price
    /// went back to the buyer after the deadline; the buyer may buy again.
    enum PurchaseStatus {
        None,
        Pending,
        Delivered,
        Refunded
    }

    /// @notice A listing as stored. `escrowed` shares a slot with `price`, which `buy` reads
    /// anyway and which is never zero, so that paying into an empty escrow costs no fresh slot.
    /// @param seller The task creator who listed the model.
    /// @param active False once delisted (final); past buyers keep what they bought.
    /// @param sales Number of keys delivered.
    /// @param price Current price in payment-token base units (non-zero).
    /// @param escrowed Total paid by buyers still waiting for their key.
    /// @param revenue Total paid for delivered keys; shared among the task's contributors.
    /// @param taskId The task whose final model this is.
    /// @param plaintextHash sha256 of the plaintext model (safetensors bytes).
    struct Listing {
        address seller;
        bool active;
        uint64 sales;
        uint128 price;
        uint128 escrowed;
        uint128 revenue;
        uint256 taskId;
        bytes32 plaintextHash;
        string encryptedCid;
        string metadataCid;
    }

    /// @notice One buyer's purchase of one model, in two storage slots: block numbers take
    /// 56 bits (enough for billions of years of blocks), so that status, blocks and price share
    /// one slot and a first purchase writes two fresh slots instead of three. Events and errors
    /// report block numbers as `uint64`.
    /// @param purchasedBlock Block of the last `buy`.
    /// @param deadlineBlock Last block in which the key may be delivered; a refund is possible
    /// from the next block on.
    /// @param pricePaid What the buyer paid (the price may change later).
    /// @param buyerKey The buyer's X25519 public key that the content key is sealed to.
    struct Purchase {
        PurchaseStatus status;
        uint56 purchasedBlock;
        uint56 deadlineBlock;
        uint128 pricePaid;
        bytes32 buyerKey;
    }

    /// @notice The final model of task `taskId` was listed as model `modelId`.
    event ModelListed(
        uint256 indexed modelId,
        address indexed seller,
        uint256 indexed taskId,
        uint128 price,
        string encryptedCid,
        string metadataCid,
        bytes32 plaintextHash
    );
    /// @notice The seller changed the price.
    event PriceChanged(uint256 indexed modelId, uint128 oldPrice, uint128 newPrice);
    /// @notice The seller delisted the model for good; pending buyers are still served or refunded.
    event ModelDelisted(uint256 indexed modelId);
    /// @notice `buyer` paid `price` into escrow and asks for the content key sealed to
    /// `buyerKey` by block `deadlineBlock`.
    event ModelPurchased(
        uint256 indexed modelId,
        address indexed buyer,
        address indexed seller,
        uint128 price,
        bytes32 buyerKey,
        uint64 deadlineBlock
    );
    /// @notice `buyer` replaced the key of its pending purchase; the deadline restarted.
    event BuyerKeyUpdated(
        uint256 indexed modelId, address indexed buyer, address indexed seller, bytes32 buyerKey, uint64 deadlineBlock
    );
    /// @notice The seller published the content key sealed to the buyer's key (the purchase's
    /// `buyerKey`, which can no longer change); the price moved from escrow to revenue and the
    /// model has now made `sales` sales.
    event KeyDelivered(uint256 indexed modelId, address indexed buyer, bytes sealedKey, uint64 sales);
    /// @notice No key came by the deadline: `buyer` took back the `amount` it paid.
    event PurchaseRefunded(uint256 indexed modelId, address indexed buyer, uint128 amount);
    /// @notice `payee` withdrew `amount` of its share of the revenue of model `modelId`.
    event RevenueWithdrawn(uint256 indexed modelId, address indexed payee, uint256 amount);

    /// @notice A constructor argument is zero, or the delivery window is longer than
    /// 2^32 - 1 blocks; `field` names it.
    error ModelMarketplaceInvalidConfig(string field);
    /// @notice No model with this id.
    error ModelMarketplaceUnknownModel(uint256 modelId);
    /// @notice Only the model's seller may do this.
    error ModelMarketplaceNotSeller(uint256 modelId, address caller);
    /// @notice The model is no longer for sale.
    error ModelMarketplaceDelisted(uint256 modelId);
    /// @notice Prices must be non-zero.
    error ModelMarketplaceInvalidPrice(uint256 price);
    /// @notice The current price is above the buyer's limit.
    error ModelMarketplacePriceAboveMax(uint256 price, uint256 maxPrice);
    /// @notice The buyer key is zero.
    error ModelMarketplaceInvalidBuyerKey();
    /// @notice The buyer already has a pending or delivered purchase of this model.
    error ModelMarketplaceAlreadyPurchased(uint256 modelId, address buyer);
    /// @notice The buyer's balance does not cover the price.
    error ModelMarketplaceInsufficientBalance(uint256 balance, uint256 price);
    /// @notice The buyer's allowance does not cover the price.
    error ModelMarketplaceInsufficientAllowance(uint256 allowance, uint256 price);
    /// @notice The marketplace received `received` instead of `expected`: fee-on-transfer and
    /// other tokens that do not move exact amounts are not supported.
    error ModelMarketplaceUnsupportedToken(uint256 expected, uint256 received);
    /// @notice The account is blacklisted.
    error ModelMarketplaceBlacklisted(address account);
    /// @notice The buyer has no pending purchase of this model.
    error ModelMarketplaceNotPending(uint256 modelId, address buyer);
    /// @notice The delivery window runs until `deadlineBlock`; a refund is possible after it.
    error ModelMarketplaceRefundNotYet(uint256 modelId, address buyer, uint64 deadlineBlock);
    /// @notice A sealed key is `length` bytes long instead of 92 (see `deliverKey`).
    error ModelMarketplaceInvalidSealedKey(uint256 length);
    /// @notice The key the seller sealed to is no longer the buyer's key for this purchase: the
    /// buyer replaced it with `updateBuyerKey`. Seal the content key to the current key.
    error ModelMarketplaceBuyerKeyChanged(uint256 modelId, address buyer);
    /// @notice `deliverKeys` got `buyers` buyers, `buyerKeys` buyer keys and `sealedKeys` sealed keys.
    error ModelMarketplaceLengthMismatch(uint256 buyers, uint256 buyerKeys, uint256 sealedKeys);
    /// @notice The caller has nothing to withdraw from this model.
    error ModelMarketplaceNothingToWithdraw(uint256 modelId, address payee);
    /// @notice Only the task's creator may list its model.
    error ModelMarketplaceNotTaskCreator(uint256 taskId, address caller);
    /// @notice The task has not completed all its rounds.
    error ModelMarketplaceTaskNotCompleted(uint256 taskId);
    /// @notice The task paid no rewards, so there is nobody to share revenue with.
    error ModelMarketplaceNoContributors(uint256 taskId);
    /// @notice The task's model is already listed as `modelId`.
    error ModelMarketplaceTaskAlreadyListed(uint256 taskId, uint256 modelId);
    /// @notice A CID argument was empty.
    error ModelMarketplaceEmptyCid();

    /// @notice Role that may pause and unpause listing and buying.
    function PAUSER_ROLE() external view returns (bytes32);

    /// @notice Lists the final model of completed task `taskId`; its revenue goes to the task's
    /// contributors in proportion to the rewards they earned. Only the task's creator, once per
    /// task, not while blacklisted or paused. Costs the same whatever the number of contributors.
    /// @param encryptedCid CID of the encrypted weights.
    /// @param metadataCid CID of the listing's metadata document.
    /// @param plaintextHash sha256 of the plaintext weights.
    /// @param price Non-zero price in payment-token base units.
    function listTaskModel(
        uint256 taskId,
        string calldata encryptedCid,
        string calldata metadataCid,
        bytes32 plaintextHash,
        uint128 price
    ) external returns (uint256 modelId);

    /// @notice Pays the price of `modelId` (at most `maxPrice`) into escrow from the caller's
    /// allowance and asks for the content key sealed to `buyerKey` within the delivery window.
    /// Not while blacklisted or paused, nor while a purchase of the model is pending or delivered.
    function buy(uint256 modelId, uint256 maxPrice, bytes32 buyerKey) external;

    /// @notice Like `buy`, after applying an EIP-2612 permit of `maxPrice` signed by the caller.
    /// A permit that fails (already used by a front-runner, or a token without permit) is
    /// ignored: the purchase goes through if the allowance covers the price.
    function buyWithPermit(
        uint256 modelId,
        uint256 maxPrice,
        bytes32 buyerKey,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice The buyer of a pending purchase replaces its key (e.g. the first one was
    /// malformed); the delivery deadline restarts from this block. A delivery sealed to the old
    /// key reverts from now on (`ModelMarketplaceBuyerKeyChanged`).
    function updateBuyerKey(uint256 modelId, bytes32 newKey) external;

    /// @notice The seller publishes the content key sealed to `buyerKey`, the key of `buyer`'s
    /// pending purchase; its price moves from escrow to revenue. Reverts if the buyer has
    /// replaced `buyerKey` since the seller read it, so that the escrow is only released for a
    /// key the buyer can open. Allowed to a blacklisted seller and while paused, so that buyers
    /// who paid are served.
    /// @param buyerKey The X25519 public key the content key was sealed to; must equal the
    /// purchase's current `buyerKey`.
    /// @param sealedKey The sealed content key, exactly 92 bytes: the 32-byte ephemeral X25519
    /// public key, the 12-byte AES-GCM nonce, the 32-byte content key encrypted with AES-256-GCM
    /// and its 16-byte tag.
    function deliverKey(uint256 modelId, address buyer, bytes32 buyerKey, bytes calldata sealedKey) external;

    /// @notice `deliverKey` for several buyers in one transaction, one buyer key and one sealed
    /// key per buyer; reverts as a whole if one of them cannot be served.
    function deliverKeys(
        uint256 modelId,
        address[] calldata buyers,
        bytes32[] calldata buyerKeys,
        bytes[] calldata sealedKeys
    ) external;

    /// @notice The caller takes back the price of its pending purchase once the delivery
    /// deadline has passed. Allowed while blacklisted and while paused: it is the buyer's money.
    function refund(uint256 modelId) external returns (uint128 amount);

    /// @notice The seller changes the price. Not while delisted or blacklisted.
    function setPrice(uint256 modelId, uint128 newPrice) external;

    /// @notice The seller stops selling the model, for good. Pending buyers are still served or
    /// refunded. Allowed while blacklisted: it only stops sales.
    function delist(uint256 modelId) external;

    /// @notice Pays the caller its share of the revenue of `modelId` not withdrawn yet. Not while
    /// blacklisted (the share stays allocated to the caller).
    function withdraw(uint256 modelId) external returns (uint256 amount);

    /// @notice Stops listing and buying. Only `PAUSER_ROLE`.
    function pause() external;

    /// @notice Resumes listing and buying. Only `PAUSER_ROLE`.
    function unpause() external;

    /// @notice The ERC-20 that prices are in.
    function paymentToken() external view returns (address);

    /// @notice Blocks the seller has to deliver a key after a purchase or a key update.
    function deliveryWindow() external view returns (uint64);

    /// @notice Number of listings; ids run from 1 to `modelCount()`.
    function modelCount() external view returns (uint256);

    /// @notice The stored listing (all zero for an unknown id).
    function listing(uint256 modelId) external view returns (Listing memory);

    /// @notice The model listed for task `taskId`, or 0.
    function modelOfTask(uint256 taskId) external view returns (uint256);

    /// @notice The purchase of `modelId` by `buyer` (status `None` if there is none).
    function purchase(uint256 modelId, address buyer) external view returns (Purchase memory);

    /// @notice Whether `buyer` received the key of `modelId`.
    function hasAccess(uint256 modelId, address buyer) external view returns (bool);

    /// @notice What `payee` can withdraw from `modelId` now:
    /// `revenue * earned / totalRewarded - withdrawn`, rounded down (0 for a non-contributor).
    /// Also reported for a blacklisted payee, who cannot withdraw it until the blacklisting is lifted.
    function withdrawable(uint256 modelId, address payee) external view returns (uint256);

    /// @notice What `payee` has withdrawn from `modelId` so far.
    function withdrawn(uint256 modelId, address payee) external view returns (uint256);
}
