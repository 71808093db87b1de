// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Model marketplace
/// @notice Sells trained models for FLT. A listing points to the encrypted weights and a metadata
/// document on IPFS and commits to the plaintext with a hash. A buyer pays with an allowance or an
/// EIP-2612 permit and publishes a public key; the seller answers with the content key encrypted
/// for that key (`KeyDelivered`). Revenue is split among the listing's payees by fixed shares and
/// pulled with `withdraw`, so `buy` costs the same whatever the number of payees. A task's final
/// model is listed with its contributors as payees, weighted by the rewards they earned.
/// The number of sales of a model is the paper's measure of its value.
interface IModelMarketplace {
    /// @notice A listing as stored.
    /// @param taskId The task whose final model this is, or 0 for a free-standing model.
    /// @param revenue Total FLT paid for this model so far.
    struct Listing {
        address seller;
        bool active;
        uint64 sales;
        uint128 price;
        uint128 revenue;
        uint256 taskId;
        bytes32 plaintextHash;
        string encryptedCid;
        string metadataCid;
    }

    /// @notice A buyer's access to one model.
    struct Access {
        uint64 purchasedBlock;
        uint128 pricePaid;
        bool keyDelivered;
    }

    /// @notice Model `modelId` was listed; `payees` share revenue in `sharesBps`.
    event ModelListed(
        uint256 indexed modelId,
        address indexed seller,
        uint256 indexed taskId,
        uint128 price,
        string encryptedCid,
        string metadataCid,
        bytes32 plaintextHash,
        address[] payees,
        uint16[] sharesBps
    );
    /// @notice The seller changed the price.
    event PriceChanged(uint256 indexed modelId, uint128 oldPrice, uint128 newPrice);
    /// @notice The seller delisted the model; past buyers keep their access.
    event ModelDelisted(uint256 indexed modelId);
    /// @notice `buyer` paid `price` and asks for the content key encrypted to `buyerKey`.
    event ModelPurchased(
        uint256 indexed modelId, address indexed buyer, address indexed seller, uint128 price, bytes buyerKey, uint64 sales
    );
    /// @notice The seller delivered the content key, encrypted for `buyer`.
    event KeyDelivered(uint256 indexed modelId, address indexed buyer, bytes encryptedKey);
    /// @notice `payee` withdrew `amount` of its revenue from model `modelId`.
    event RevenueWithdrawn(uint256 indexed modelId, address indexed payee, uint256 amount);

    /// @notice No model with this id.
    error ModelMarketplaceUnknownModel(uint256 modelId);
    /// @notice Only the model's seller may do this.
    error ModelMarketplaceNotSeller(uint256 modelId, address caller);
    /// @notice The model is no longer for sale.
    error ModelMarketplaceDelisted(uint256 modelId);
    /// @notice Prices must be non-zero multiples of `PRICE_UNIT`, so that every share splits exactly.
    error ModelMarketplaceInvalidPrice(uint256 price);
    /// @notice The current price is above the buyer's limit.
    error ModelMarketplacePriceAboveMax(uint256 price, uint256 maxPrice);
    /// @notice The buyer's allowance does not cover the price.
    error ModelMarketplaceInsufficientAllowance(uint256 allowance, uint256 price);
    /// @notice The account is blacklisted.
    error ModelMarketplaceBlacklisted(address account);
    /// @notice The buyer already owns access to this model.
    error ModelMarketplaceAlreadyPurchased(uint256 modelId, address buyer);
    /// @notice The buyer never bought this model.
    error ModelMarketplaceNotPurchased(uint256 modelId, address buyer);
    /// @notice Payees and shares are empty, of different lengths, contain a zero address or a
    /// zero share, or do not add up to 10_000.
    error ModelMarketplaceInvalidShares();
    /// @notice The buyer key must be a 32-byte X25519 public key.
    error ModelMarketplaceInvalidBuyerKey(uint256 length);
    /// @notice The caller has nothing to withdraw from this model.
    error ModelMarketplaceNothingToWithdraw(uint256 modelId, address payee);
    /// @notice Only the task's creator may list its model, once the task is completed.
    error ModelMarketplaceNotTaskCreator(uint256 taskId, address caller);
    /// @notice The task has not completed all its rounds.
    error ModelMarketplaceTaskNotCompleted(uint256 taskId);
    /// @notice The task paid no rewards, so there is nobody to share revenue with.
    error ModelMarketplaceNoContributors(uint256 taskId);
    /// @notice A CID argument was empty.
    error ModelMarketplaceEmptyCid();

    /// @notice Role that may pause and unpause trading.
    function PAUSER_ROLE() external view returns (bytes32);
    /// @notice Prices are multiples of this many token base units.
    function PRICE_UNIT() external view returns (uint256);

    /// @notice Lists a model with explicit payees and shares (basis points adding up to 10_000).
    function list(
        string calldata encryptedCid,
        string calldata metadataCid,
        bytes32 plaintextHash,
        uint128 price,
        address[] calldata payees,
        uint16[] calldata sharesBps
    ) external returns (uint256 modelId);

    /// @notice Lists the final model of completed task `taskId`, shared among its contributors
    /// in proportion to the rewards they earned. Only the task's creator.
    function listTaskModel(
        uint256 taskId,
        string calldata encryptedCid,
        string calldata metadataCid,
        bytes32 plaintextHash,
        uint128 price
    ) external returns (uint256 modelId);

    /// @notice Buys access to `modelId`, paying its price (at most `maxPrice`) from the caller's allowance.
    function buy(uint256 modelId, uint256 maxPrice, bytes calldata buyerKey) external;

    /// @notice Like `buy`, but first applies an EIP-2612 permit of `maxPrice` signed by the caller.
    function buyWithPermit(
        uint256 modelId,
        uint256 maxPrice,
        bytes calldata buyerKey,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice The seller publishes the content key encrypted for `buyer`. Allowed even to a
    /// blacklisted seller, so that buyers who paid are never left without their key.
    function deliverKey(uint256 modelId, address buyer, bytes calldata encryptedKey) external;

    /// @notice The seller changes the price. Not while the seller is blacklisted.
    function setPrice(uint256 modelId, uint128 newPrice) external;

    /// @notice The seller stops selling the model (allowed while blacklisted: it only stops sales).
    function delist(uint256 modelId) external;

    /// @notice Pays the caller its share of the revenue of `modelId` not yet withdrawn.
    function withdraw(uint256 modelId) external returns (uint256 amount);

    /// @notice Stops listing and buying. Only `PAUSER_ROLE`.
    function pause() external;

    /// @notice Resumes listing and buying. Only `PAUSER_ROLE`.
    function unpause() external;

    /// @notice Number of listings; ids run from 1 to `modelCount()`.
    function modelCount() external view returns (uint256);

    /// @notice The stored listing.
    function listing(uint256 modelId) external view returns (Listing memory);

    /// @notice Payees and shares of `modelId`.
    function payeesOf(uint256 modelId) external view returns (address[] memory payees, uint16[] memory sharesBps);

    /// @notice What `buyer` holds of `modelId`.
    function accessOf(uint256 modelId, address buyer) external view returns (Access memory);

    /// @notice Whether `buyer` bought `modelId`.
    function hasAccess(uint256 modelId, address buyer) external view returns (bool);

    /// @notice What `payee` can withdraw from `modelId` now.
    function withdrawable(uint256 modelId, address payee) external view returns (uint256);

    /// @notice What `payee` has withdrawn from `modelId` so far.
    function withdrawn(uint256 modelId, address payee) external view returns (uint256);
}
