// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IModelMarketplace} from "./interfaces/IModelMarketplace.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";

/// @title ModelMarketplace
/// @notice Lists and sells trained models for FLT; revenue is pulled by the payees.
/// @dev Payee balances are computed lazily, as in OpenZeppelin 4's PaymentSplitter:
/// withdrawable = revenue * share / 10_000 - withdrawn. Prices are multiples of `PRICE_UNIT`
/// (= 10_000 base units) so that this division is exact and no dust is ever stranded.
contract ModelMarketplace is IModelMarketplace, AccessControl, Pausable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @inheritdoc IModelMarketplace
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @inheritdoc IModelMarketplace
    uint256 public constant PRICE_UNIT = 10_000;

    uint16 private constant _TOTAL_SHARES = 10_000;
    uint256 private constant _BUYER_KEY_LENGTH = 32;

    struct Payee {
        uint16 shareBps;
        uint128 withdrawn;
    }

    IERC20 private immutable _token;
    IParticipantRegistry private immutable _registry;
    ITaskLedger private immutable _ledger;

    uint256 private _modelCount;
    mapping(uint256 modelId => Listing) private _listings;
    mapping(uint256 modelId => address[]) private _payees;
    mapping(uint256 modelId => mapping(address payee => Payee)) private _shares;
    mapping(uint256 modelId => mapping(address buyer => Access)) private _access;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `PAUSER_ROLE`.
    constructor(address admin, IERC20 token, IParticipantRegistry registry, ITaskLedger ledger) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _token = token;
        _registry = registry;
        _ledger = ledger;
    }

    modifier onlySeller(uint256 modelId) {
        address seller = _listings[modelId].seller;
        if (seller == address(0)) revert ModelMarketplaceUnknownModel(modelId);
        if (seller != msg.sender) revert ModelMarketplaceNotSeller(modelId, msg.sender);
        _;
    }

    /// @inheritdoc IModelMarketplace
    function list(
        string calldata encryptedCid,
        string calldata metadataCid,
        bytes32 plaintextHash,
        uint128 price,
        address[] calldata payees,
        uint16[] calldata sharesBps
    ) external whenNotPaused returns (uint256 modelId) {
        _requireNotBlacklisted(msg.sender);
        return _list(0, encryptedCid, metadataCid, plaintextHash, price, payees, sharesBps);
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
        (address[] memory payees, uint16[] memory shares) = _contributorShares(taskId);
        return _list(taskId, encryptedCid, metadataCid, plaintextHash, price, payees, shares);
    }

    /// @inheritdoc IModelMarketplace
    function buy(uint256 modelId, uint256 maxPrice, bytes calldata buyerKey) external nonReentrant whenNotPaused {
        _buy(modelId, maxPrice, buyerKey);
    }

    /// @inheritdoc IModelMarketplace
    function buyWithPermit(
        uint256 modelId,
        uint256 maxPrice,
        bytes calldata buyerKey,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant whenNotPaused {
        // A front-runner may submit the same permit first; the allowance is then already there,
        // so a failing permit is ignored and `_buy` checks the allowance itself.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), maxPrice, deadline, v, r, s) {} catch {}
        _buy(modelId, maxPrice, buyerKey);
    }

    /// @inheritdoc IModelMarketplace
    function deliverKey(uint256 modelId, address buyer, bytes calldata encryptedKey) external onlySeller(modelId) {
        Access storage a = _access[modelId][buyer];
        if (a.purchasedBlock == 0) revert ModelMarketplaceNotPurchased(modelId, buyer);
        a.keyDelivered = true;
        emit KeyDelivered(modelId, buyer, encryptedKey);
    }

    /// @inheritdoc IModelMarketplace
    function setPrice(uint256 modelId, uint128 newPrice) external onlySeller(modelId) {
        _requireNotBlacklisted(msg.sender);
        Listing storage l = _listings[modelId];
        if (!l.active) revert ModelMarketplaceDelisted(modelId);
        _checkPrice(newPrice);
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
        _shares[modelId][msg.sender].withdrawn += uint128(amount);
        emit RevenueWithdrawn(modelId, msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
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
    function modelCount() external view returns (uint256) {
        return _modelCount;
    }

    /// @inheritdoc IModelMarketplace
    function listing(uint256 modelId) external view returns (Listing memory) {
        return _listings[modelId];
    }

    /// @inheritdoc IModelMarketplace
    function payeesOf(uint256 modelId) external view returns (address[] memory payees, uint16[] memory sharesBps) {
        payees = _payees[modelId];
        sharesBps = new uint16[](payees.length);
        for (uint256 i; i < payees.length; ++i) {
            sharesBps[i] = _shares[modelId][payees[i]].shareBps;
        }
    }

    /// @inheritdoc IModelMarketplace
    function accessOf(uint256 modelId, address buyer) external view returns (Access memory) {
        return _access[modelId][buyer];
    }

    /// @inheritdoc IModelMarketplace
    function hasAccess(uint256 modelId, address buyer) external view returns (bool) {
        return _access[modelId][buyer].purchasedBlock != 0;
    }

    /// @inheritdoc IModelMarketplace
    function withdrawable(uint256 modelId, address payee) external view returns (uint256) {
        return _withdrawable(modelId, payee);
    }

    /// @inheritdoc IModelMarketplace
    function withdrawn(uint256 modelId, address payee) external view returns (uint256) {
        return _shares[modelId][payee].withdrawn;
    }

    function _buy(uint256 modelId, uint256 maxPrice, bytes calldata buyerKey) private {
        Listing storage l = _listings[modelId];
        if (l.seller == address(0)) revert ModelMarketplaceUnknownModel(modelId);
        if (!l.active) revert ModelMarketplaceDelisted(modelId);
        _requireNotBlacklisted(msg.sender);
        uint128 price = l.price;
        if (price > maxPrice) revert ModelMarketplacePriceAboveMax(price, maxPrice);
        if (buyerKey.length != _BUYER_KEY_LENGTH) revert ModelMarketplaceInvalidBuyerKey(buyerKey.length);
        Access storage a = _access[modelId][msg.sender];
        if (a.purchasedBlock != 0) revert ModelMarketplaceAlreadyPurchased(modelId, msg.sender);
        uint256 allowance = _token.allowance(msg.sender, address(this));
        if (allowance < price) revert ModelMarketplaceInsufficientAllowance(allowance, price);

        a.purchasedBlock = uint64(block.number);
        a.pricePaid = price;
        uint64 sales = ++l.sales;
        l.revenue += price;
        emit ModelPurchased(modelId, msg.sender, l.seller, price, buyerKey, sales);
        // Checks-effects-interactions: the payment comes last, under `nonReentrant`.
        _token.safeTransferFrom(msg.sender, address(this), price);
    }

    function _list(
        uint256 taskId,
        string calldata encryptedCid,
        string calldata metadataCid,
        bytes32 plaintextHash,
        uint128 price,
        address[] memory payees,
        uint16[] memory sharesBps
    ) private returns (uint256 modelId) {
        if (bytes(encryptedCid).length == 0 || bytes(metadataCid).length == 0) revert ModelMarketplaceEmptyCid();
        _checkPrice(price);
        if (payees.length == 0 || payees.length != sharesBps.length) revert ModelMarketplaceInvalidShares();
        modelId = ++_modelCount;
        uint256 total;
        for (uint256 i; i < payees.length; ++i) {
            Payee storage p = _shares[modelId][payees[i]];
            // A repeated payee would be counted twice; a zero share would be a payee for nothing.
            if (payees[i] == address(0) || sharesBps[i] == 0 || p.shareBps != 0) revert ModelMarketplaceInvalidShares();
            p.shareBps = sharesBps[i];
            total += sharesBps[i];
        }
        if (total != _TOTAL_SHARES) revert ModelMarketplaceInvalidShares();
        _payees[modelId] = payees;
        _listings[modelId] = Listing({
            seller: msg.sender,
            active: true,
            sales: 0,
            price: price,
            revenue: 0,
            taskId: taskId,
            plaintextHash: plaintextHash,
            encryptedCid: encryptedCid,
            metadataCid: metadataCid
        });
        emit ModelListed(modelId, msg.sender, taskId, price, encryptedCid, metadataCid, plaintextHash, payees, sharesBps);
    }

    /// @dev Shares in proportion to earned rewards, rounded down; the rounding remainder goes to
    /// the largest earner. Blacklisted contributors and those whose share rounds to zero are left out.
    function _contributorShares(uint256 taskId)
        private
        view
        returns (address[] memory payees, uint16[] memory shares)
    {
        (address[] memory accounts, uint256[] memory earned) = _ledger.contributions(taskId);
        uint256 total;
        for (uint256 i; i < accounts.length; ++i) {
            if (_registry.isBlacklisted(accounts[i])) earned[i] = 0;
            total += earned[i];
        }
        if (total == 0) revert ModelMarketplaceNoContributors(taskId);
        payees = new address[](accounts.length);
        shares = new uint16[](accounts.length);
        uint256 count;
        uint256 assigned;
        uint256 largest;
        for (uint256 i; i < accounts.length; ++i) {
            uint256 share = (earned[i] * _TOTAL_SHARES) / total;
            if (share == 0) continue;
            if (count == 0 || share > shares[largest]) largest = count;
            payees[count] = accounts[i];
            shares[count] = uint16(share);
            assigned += share;
            ++count;
        }
        shares[largest] += uint16(_TOTAL_SHARES - assigned);
        // Trim the arrays to `count` entries in place.
        assembly ("memory-safe") {
            mstore(payees, count)
            mstore(shares, count)
        }
    }

    function _withdrawable(uint256 modelId, address payee) private view returns (uint256) {
        Payee storage p = _shares[modelId][payee];
        return (uint256(_listings[modelId].revenue) * p.shareBps) / _TOTAL_SHARES - p.withdrawn;
    }

    function _checkPrice(uint256 price) private pure {
        if (price == 0 || price % PRICE_UNIT != 0) revert ModelMarketplaceInvalidPrice(price);
    }

    function _requireNotBlacklisted(address account) private view {
        if (_registry.isBlacklisted(account)) revert ModelMarketplaceBlacklisted(account);
    }
}
