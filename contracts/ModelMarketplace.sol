// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IModelMarketplace} from "./interfaces/IModelMarketplace.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";
import {Governed} from "./utils/Governed.sol";

/// @title ModelMarketplace
/// @notice Sells the final models of FairFL tasks with an escrow for key delivery; revenue is
/// pulled by the task's contributors.
/// @dev Payee balances are computed lazily, as in OpenZeppelin 4's PaymentSplitter, with the
/// ledger's rewards as shares: withdrawable = revenue * earned / totalRewarded - withdrawn.
/// A listed task is completed, so its shares never change.
contract ModelMarketplace is IModelMarketplace, Governed, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @inheritdoc IModelMarketplace
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @dev About 1,600 years of 12-second blocks; keeps every deadline far inside 56 bits.
    uint64 private constant _MAX_DELIVERY_WINDOW = type(uint32).max;
    /// @dev Ephemeral X25519 public key (32) + AES-GCM nonce (12) + content key (32) + tag (16).
    uint256 private constant _SEALED_KEY_LENGTH = 92;

    IERC20 private immutable _paymentToken;
    IParticipantRegistry private immutable _registry;
    ITaskLedger private immutable _ledger;
    uint64 private immutable _deliveryWindow;

    uint256 private _modelCount;
    mapping(uint256 modelId => Listing) private _listings;
    mapping(uint256 taskId => uint256 modelId) private _modelOfTask;
    mapping(uint256 modelId => mapping(address buyer => Purchase)) private _purchases;
    mapping(uint256 modelId => mapping(address payee => uint256)) private _withdrawn;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `PAUSER_ROLE`.
    /// @param paymentToken_ Any ERC-20 that moves exact amounts, with or without permit.
    /// @param deliveryWindowBlocks Blocks a seller has to deliver a key before the buyer may
    /// take a refund.
    constructor(
        address admin,
        IERC20 paymentToken_,
        IParticipantRegistry registry,
        ITaskLedger ledger,
        uint64 deliveryWindowBlocks
    ) Governed(admin) {
        if (address(paymentToken_) == address(0)) revert ModelMarketplaceInvalidConfig("paymentToken");
        if (address(registry) == address(0)) revert ModelMarketplaceInvalidConfig("registry");
        if (address(ledger) == address(0)) revert ModelMarketplaceInvalidConfig("ledger");
        if (deliveryWindowBlocks == 0 || deliveryWindowBlocks > _MAX_DELIVERY_WINDOW) {
            revert ModelMarketplaceInvalidConfig("deliveryWindowBlocks");
        }
        _grantRole(PAUSER_ROLE, admin);
        _paymentToken = paymentToken_;
        _registry = registry;
        _ledger = ledger;
        _deliveryWindow = deliveryWindowBlocks;
    }

    modifier onlySeller(uint256 modelId) {
        address seller = _listings[modelId].seller;
        if (seller == address(0)) revert ModelMarketplaceUnknownModel(modelId);
        if (seller != msg.sender) revert ModelMarketplaceNotSeller(modelId, msg.sender);
        _;
    }

    /// @inheritdoc IModelMarketplace
    function listTaskModel(
        uint256 taskId,
        string calldata encryptedCid,
        string calldata metadataCid,
        bytes32 plaintextHash,
        uint128 price
    ) external whenNotPaused returns (uint256 modelId) {
        _requireNotBlacklisted(msg.sender);
        ITaskLedger.Task memory t = _ledger.task(taskId);
        if (t.creator != msg.sender) revert ModelMarketplaceNotTaskCreator(taskId, msg.sender);
        if (t.status != ITaskLedger.TaskStatus.Completed) revert ModelMarketplaceTaskNotCompleted(taskId);
        uint256 listed = _modelOfTask[taskId];
        if (listed != 0) revert ModelMarketplaceTaskAlreadyListed(taskId, listed);
        if (t.totalRewarded == 0) revert ModelMarketplaceNoContributors(taskId);
        if (bytes(encryptedCid).length == 0 || bytes(metadataCid).length == 0) revert ModelMarketplaceEmptyCid();
        if (price == 0) revert ModelMarketplaceInvalidPrice(price);

        modelId = ++_modelCount;
        _modelOfTask[taskId] = modelId;
        Listing storage l = _listings[modelId];
        l.seller = msg.sender;
        l.active = true;
        l.price = price;
        l.taskId = taskId;
        l.plaintextHash = plaintextHash;
        l.encryptedCid = encryptedCid;
        l.metadataCid = metadataCid;
        emit ModelListed(modelId, msg.sender, taskId, price, encryptedCid, metadataCid, plaintextHash);
    }

    /// @inheritdoc IModelMarketplace
    function buy(uint256 modelId, uint256 maxPrice, bytes32 buyerKey) external nonReentrant whenNotPaused {
        _buy(modelId, maxPrice, buyerKey);
    }

    /// @inheritdoc IModelMarketplace
    function buyWithPermit(
        uint256 modelId,
        uint256 maxPrice,
        bytes32 buyerKey,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant whenNotPaused {
        // A front-runner may submit the same permit first, or the token may have no permit at
        // all; a failing permit is ignored and `_buy` checks the allowance itself.
        try IERC20Permit(address(_paymentToken)).permit(msg.sender, address(this), maxPrice, deadline, v, r, s) {}
            catch {}
        _buy(modelId, maxPrice, buyerKey);
    }

    /// @inheritdoc IModelMarketplace
    function updateBuyerKey(uint256 modelId, bytes32 newKey) external {
        Purchase storage p = _pendingPurchase(modelId, msg.sender);
        if (newKey == bytes32(0)) revert ModelMarketplaceInvalidBuyerKey();
        uint56 deadline = _deadline();
        p.buyerKey = newKey;
        p.deadlineBlock = deadline;
        emit BuyerKeyUpdated(modelId, msg.sender, _listings[modelId].seller, newKey, deadline);
    }

    /// @inheritdoc IModelMarketplace
    function deliverKey(uint256 modelId, address buyer, bytes32 buyerKey, bytes calldata sealedKey)
        external
        nonReentrant
        onlySeller(modelId)
    {
        _deliver(modelId, buyer, buyerKey, sealedKey);
    }

    /// @inheritdoc IModelMarketplace
    function deliverKeys(
        uint256 modelId,
        address[] calldata buyers,
        bytes32[] calldata buyerKeys,
        bytes[] calldata sealedKeys
    ) external nonReentrant onlySeller(modelId) {
        if (buyers.length != buyerKeys.length || buyers.length != sealedKeys.length) {
            revert ModelMarketplaceLengthMismatch(buyers.length, buyerKeys.length, sealedKeys.length);
        }
        for (uint256 i; i < buyers.length; ++i) {
            _deliver(modelId, buyers[i], buyerKeys[i], sealedKeys[i]);
        }
    }

    /// @inheritdoc IModelMarketplace
    function refund(uint256 modelId) external nonReentrant returns (uint128 amount) {
        Purchase storage p = _pendingPurchase(modelId, msg.sender);
        if (block.number <= p.deadlineBlock) revert ModelMarketplaceRefundNotYet(modelId, msg.sender, p.deadlineBlock);
        amount = p.pricePaid;
        p.status = PurchaseStatus.Refunded;
        _listings[modelId].escrowed -= amount;
        emit PurchaseRefunded(modelId, msg.sender, amount);
        // Effects before the transfer: a re-entering buyer would find nothing pending.
        _paymentToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IModelMarketplace
    function setPrice(uint256 modelId, uint128 newPrice) external onlySeller(modelId) {
        _requireNotBlacklisted(msg.sender);
        Listing storage l = _listings[modelId];
        if (!l.active) revert ModelMarketplaceDelisted(modelId);
        if (newPrice == 0) revert ModelMarketplaceInvalidPrice(newPrice);
        uint128 old = l.price;
        l.price = newPrice;
        emit PriceChanged(modelId, old, newPrice);
    }

    /// @inheritdoc IModelMarketplace
    function delist(uint256 modelId) external onlySeller(modelId) {
        Listing storage l = _listings[modelId];
        if (!l.active) revert ModelMarketplaceDelisted(modelId);
        l.active = false;
        emit ModelDelisted(modelId);
    }

    /// @inheritdoc IModelMarketplace
    function withdraw(uint256 modelId) external nonReentrant returns (uint256 amount) {
        if (_listings[modelId].seller == address(0)) revert ModelMarketplaceUnknownModel(modelId);
        _requireNotBlacklisted(msg.sender);
        amount = _withdrawable(modelId, msg.sender);
        if (amount == 0) revert ModelMarketplaceNothingToWithdraw(modelId, msg.sender);
        // Effects before the transfer: a re-entering payee would find nothing left.
        _withdrawn[modelId][msg.sender] += amount;
        emit RevenueWithdrawn(modelId, msg.sender, amount);
        _paymentToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IModelMarketplace
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IModelMarketplace
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @inheritdoc IModelMarketplace
    function paymentToken() external view returns (address) {
        return address(_paymentToken);
    }

    /// @inheritdoc IModelMarketplace
    function deliveryWindow() external view returns (uint64) {
        return _deliveryWindow;
    }

    /// @inheritdoc IModelMarketplace
    function modelCount() external view returns (uint256) {
        return _modelCount;
    }

    /// @inheritdoc IModelMarketplace
    function listing(uint256 modelId) external view returns (Listing memory) {
        return _listings[modelId];
    }

    /// @inheritdoc IModelMarketplace
    function modelOfTask(uint256 taskId) external view returns (uint256) {
        return _modelOfTask[taskId];
    }

    /// @inheritdoc IModelMarketplace
    function purchase(uint256 modelId, address buyer) external view returns (Purchase memory) {
        return _purchases[modelId][buyer];
    }

    /// @inheritdoc IModelMarketplace
    function hasAccess(uint256 modelId, address buyer) external view returns (bool) {
        // slither-disable-next-line incorrect-equality
        return _purchases[modelId][buyer].status == PurchaseStatus.Delivered;
    }

    /// @inheritdoc IModelMarketplace
    function withdrawable(uint256 modelId, address payee) external view returns (uint256) {
        if (_listings[modelId].seller == address(0)) return 0;
        return _withdrawable(modelId, payee);
    }

    /// @inheritdoc IModelMarketplace
    function withdrawn(uint256 modelId, address payee) external view returns (uint256) {
        return _withdrawn[modelId][payee];
    }

    function _buy(uint256 modelId, uint256 maxPrice, bytes32 buyerKey) private {
        Listing storage l = _listings[modelId];
        address seller = l.seller;
        if (seller == address(0)) revert ModelMarketplaceUnknownModel(modelId);
        if (!l.active) revert ModelMarketplaceDelisted(modelId);
        _requireNotBlacklisted(msg.sender);
        uint128 price = l.price;
        if (price > maxPrice) revert ModelMarketplacePriceAboveMax(price, maxPrice);
        if (buyerKey == bytes32(0)) revert ModelMarketplaceInvalidBuyerKey();
        Purchase storage p = _purchases[modelId][msg.sender];
        PurchaseStatus status = p.status;
        if (status == PurchaseStatus.Pending || status == PurchaseStatus.Delivered) {
            revert ModelMarketplaceAlreadyPurchased(modelId, msg.sender);
        }
        uint256 balance = _paymentToken.balanceOf(msg.sender);
        if (balance < price) revert ModelMarketplaceInsufficientBalance(balance, price);
        uint256 allowance = _paymentToken.allowance(msg.sender, address(this));
        if (allowance < price) revert ModelMarketplaceInsufficientAllowance(allowance, price);

        uint56 deadline = _deadline();
        p.status = PurchaseStatus.Pending;
        p.purchasedBlock = uint56(block.number);
        p.deadlineBlock = deadline;
        p.pricePaid = price;
        p.buyerKey = buyerKey;
        l.escrowed += price;
        emit ModelPurchased(modelId, msg.sender, seller, price, buyerKey, deadline);

        // Checks-effects-interactions: the payment comes last, under `nonReentrant`. Measuring
        // what arrived only reverts, so the state written above stands only for an exact amount.
        uint256 before = _paymentToken.balanceOf(address(this));
        _paymentToken.safeTransferFrom(msg.sender, address(this), price);
        uint256 received = _paymentToken.balanceOf(address(this)) - before;
        if (received != price) revert ModelMarketplaceUnsupportedToken(price, received);
    }

    /// @dev The caller checked that the sender is the seller. No token moves: the price goes
    /// from the listing's escrow to its revenue. The key check makes a delivery that raced an
    /// `updateBuyerKey` revert, so the escrow stays for a delivery the buyer can open, or for a
    /// refund.
    function _deliver(uint256 modelId, address buyer, bytes32 buyerKey, bytes calldata sealedKey) private {
        if (sealedKey.length != _SEALED_KEY_LENGTH) revert ModelMarketplaceInvalidSealedKey(sealedKey.length);
        Purchase storage p = _purchases[modelId][buyer];
        if (p.status != PurchaseStatus.Pending) revert ModelMarketplaceNotPending(modelId, buyer);
        if (p.buyerKey != buyerKey) revert ModelMarketplaceBuyerKeyChanged(modelId, buyer);
        uint128 price = p.pricePaid;
        p.status = PurchaseStatus.Delivered;
        Listing storage l = _listings[modelId];
        l.escrowed -= price;
        l.revenue += price;
        uint64 sales = ++l.sales;
        emit KeyDelivered(modelId, buyer, sealedKey, sales);
    }

    /// @dev Block numbers stay below 2^56 for billions of years and the window below 2^32
    /// (checked at construction), so the casts cannot truncate.
    function _deadline() private view returns (uint56) {
        return uint56(block.number + _deliveryWindow);
    }

    function _pendingPurchase(uint256 modelId, address buyer) private view returns (Purchase storage p) {
        p = _purchases[modelId][buyer];
        if (p.status != PurchaseStatus.Pending) revert ModelMarketplaceNotPending(modelId, buyer);
    }

    /// @dev Rounded down per payee, so the payees' entitlements never add up to more than the
    /// revenue. Entitlements only grow (revenue only grows, shares are fixed), so the
    /// subtraction cannot underflow.
    function _withdrawable(uint256 modelId, address payee) private view returns (uint256) {
        Listing storage l = _listings[modelId];
        (uint256 earned, uint256 totalRewarded) = _ledger.rewardShare(l.taskId, payee);
        return (uint256(l.revenue) * earned) / totalRewarded - _withdrawn[modelId][payee];
    }

    function _requireNotBlacklisted(address account) private view {
        if (_registry.isBlacklisted(account)) revert ModelMarketplaceBlacklisted(account);
    }
}
