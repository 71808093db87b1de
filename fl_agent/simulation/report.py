"""The simulation report (JSON) and its plots (PNG).

Report fields::

    config      the SimulationConfig
    rounds      [{round, accuracy, f1_macro, validation, accepted, rejected, reasons,
                  submissions, attack_round, round_millis, malicious_submissions,
                  malicious_flagged, benign_flagged, global_cid, workload_cid, tx_hash,
                  gas_used, block, aggregation_millis}]; with ``attack_every`` > 1 the
                  attackers' honest rounds count in no submission figure
    final       {accuracy, f1_macro, backdoor_asr?}
    detection   {tpr, fpr, malicious_submissions, malicious_flagged, benign_submissions,
                 benign_flagged}: flagged = rejected by the aggregator, over all rounds
    rewards     {address: FLT wei earned on chain}; reward_share_malicious
    reputation  {address: basis points}; blacklisted [addresses]; malicious [addresses]
    chain       {network, task_id, contracts, first_block, last_block, transactions,
                 gas_total}
    listing     {model_id, encrypted_cid, metadata_cid, price} when the model was listed

Accuracy and F1 are measured on the held-out test split, which no agent sees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fl_agent.learning.training import evaluate, predict


class ReportBuilder:
    """Collects rounds as they finish and reads the final state from the chain."""

    def __init__(self, config: Any, spec: Any, document: Any, malicious: dict[str, bool],
                 test: Any, trigger: Any = None) -> None:
        self.config = config
        self.spec = spec
        self.malicious = {a.lower(): bad for a, bad in malicious.items()}
        self.X_test_raw = np.asarray(test.X, dtype=np.float32)
        self.X_test = document.data.standardize(test.X)
        self.y_test = np.asarray(test.y)
        self.document = document
        self.trigger = trigger
        self.rounds: list[dict[str, Any]] = []
        self.final_params: np.ndarray | None = None

    def _quality(self, params: np.ndarray) -> dict[str, float]:
        return {"accuracy": evaluate(self.spec, params, self.X_test, self.y_test, "accuracy"),
                "f1_macro": evaluate(self.spec, params, self.X_test, self.y_test, "f1_macro")}

    def add_round(self, outcome: Any) -> dict[str, Any]:
        # An attacker that attacks only in some rounds submits honest updates in the others:
        # those count neither as attacks (TPR) nor as benign submissions (FPR).
        attacking = self.config.attacks_in(outcome.round)
        flagged_bad = sum(1 for v in outcome.verdicts
                          if not v.accepted and self.malicious.get(v.participant.lower()))
        flagged_good = sum(1 for v in outcome.verdicts
                           if not v.accepted and not self.malicious.get(v.participant.lower()))
        bad = sum(1 for v in outcome.verdicts if self.malicious.get(v.participant.lower()))
        row = {
            "round": outcome.round,
            **self._quality(outcome.params),
            "validation": outcome.validation,
            "accepted": outcome.accepted,
            "rejected": outcome.rejected,
            "reasons": {v.participant: v.reason for v in outcome.verdicts if not v.accepted},
            "submissions": len(outcome.verdicts) - (0 if attacking else bad),
            "attack_round": attacking,
            # The slowest reported training time: how long the round's training took.
            "round_millis": max((v.training_millis for v in outcome.verdicts), default=0),
            "malicious_submissions": bad if attacking else 0,
            "malicious_flagged": flagged_bad if attacking else 0,
            "benign_flagged": flagged_good,
            "global_cid": outcome.new_cid,
            "workload_cid": outcome.workload_cid,
            "tx_hash": outcome.receipt.tx_hash,
            "gas_used": outcome.receipt.gas_used,
            "block": outcome.receipt.block,
            "aggregation_millis": outcome.aggregation_millis,
        }
        self.rounds.append(row)
        self.final_params = outcome.params
        return row

    def backdoor_asr(self, params: np.ndarray) -> float:
        from fl_agent.simulation.attacks import apply_trigger, attack_success_rate

        stamped = self.document.data.standardize(apply_trigger(self.X_test_raw, self.trigger))
        return attack_success_rate(predict(self.spec, params, stamped), self.y_test, 0)

    def finish(self, fairfl: Any, task_id: int, network: str, deployment: Any,
               first_block: int, last_block: int, listed: Any = None, *,
               seconds: float = 0.0, privacy: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        from ape import chain

        if self.final_params is None:
            raise RuntimeError("no round finished")  # run_simulation always runs one
        final = self._quality(self.final_params)
        if self.trigger is not None:
            final["backdoor_asr"] = self.backdoor_asr(self.final_params)
        detection = detection_rates(self.rounds)
        earned = {k.lower(): v for k, v in fairfl.ledger.contributions(task_id).items()}
        addresses = list(self.malicious)
        rewards = {a: int(earned.get(a, 0)) for a in addresses}
        people = {p.address.lower(): p for p in fairfl.registry.participants()}
        total = sum(rewards.values())
        bad_total = sum(v for a, v in rewards.items() if self.malicious[a])
        transactions = gas_total = 0
        for block in chain.blocks.range(first_block, last_block + 1):
            transactions += int(block.num_transactions)
            gas_total += int(block.gas_used)
        report: dict[str, Any] = {
            "config": self.config.model_dump(mode="json"),
            "rounds": self.rounds,
            "final": final,
            "detection": detection,
            "rewards": rewards,
            "reward_share_malicious": bad_total / total if total else 0.0,
            "reputation": {a: people[a].reputation_bps for a in addresses if a in people},
            "blacklisted": [a for a in addresses if a in people and people[a].blacklisted],
            "malicious": [a for a in addresses if self.malicious[a]],
            "chain": {
                "network": network,
                "task_id": task_id,
                "contracts": dict(deployment.contracts),
                "first_block": first_block,
                "last_block": last_block,
                "transactions": transactions,
                "gas_total": gas_total,
            },
            "seconds": round(seconds, 1),
        }
        if privacy is not None:
            report["privacy"] = privacy
        if listed is not None:
            listing = fairfl.marketplace.listing(listed.model_id)
            report["listing"] = {"model_id": listed.model_id, "price": listing.price,
                                 "encrypted_cid": listed.encrypted_cid,
                                 "metadata_cid": listed.metadata_cid,
                                 "payees": listed.metadata.contributors,
                                 "tx_hash": listed.receipt.tx_hash}
        return report


def detection_rates(rounds: list[dict[str, Any]]) -> dict[str, float | int]:
    """TPR = malicious updates flagged / malicious updates; FPR = benign flagged / benign."""
    bad = sum(r["malicious_submissions"] for r in rounds)
    good = sum(r["submissions"] - r["malicious_submissions"] for r in rounds)
    bad_flagged = sum(r["malicious_flagged"] for r in rounds)
    good_flagged = sum(r["benign_flagged"] for r in rounds)
    return {"tpr": bad_flagged / bad if bad else 1.0,
            "fpr": good_flagged / good if good else 0.0,
            "malicious_submissions": bad, "malicious_flagged": bad_flagged,
            "benign_submissions": good, "benign_flagged": good_flagged}


def write_report(report: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def save_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """accuracy.png (test accuracy and F1 per round) and participants.png (rewards and
    reputation per participant, attackers in red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = report["config"]
    title = (f"{config['dataset']} · {config['aggregator']} · attack {config['attack']} · "
             f"{config['clients']} clients, {len(report['malicious'])} malicious")
    rounds = [r["round"] for r in report["rounds"]]

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(rounds, [r["accuracy"] for r in report["rounds"]], marker="o", label="accuracy")
    ax.plot(rounds, [r["f1_macro"] for r in report["rounds"]], marker="s", label="macro F1")
    ax.set(xlabel="round", ylabel="test score", ylim=(0, 1), title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    accuracy = folder / "accuracy.png"
    fig.savefig(accuracy)
    plt.close(fig)

    addresses = list(report["rewards"])
    bad = set(report["malicious"])
    colors = ["tab:red" if a in bad else "tab:blue" for a in addresses]
    labels = [f"{a[:6]}…" for a in addresses]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), dpi=120, sharex=True)
    top.bar(labels, [report["rewards"][a] / 1e18 for a in addresses], color=colors)
    top.set(ylabel="FLT earned", title=f"{title}\nred: attackers")
    bottom.bar(labels, [report["reputation"].get(a, 0) / 100 for a in addresses], color=colors)
    bottom.set(ylabel="reputation %", ylim=(0, 100))
    for a_index, a in enumerate(addresses):
        if a in report["blacklisted"]:
            bottom.annotate("✗", (a_index, 2), ha="center", color="black")
    bottom.tick_params(axis="x", rotation=70, labelsize=7)
    fig.tight_layout()
    participants = folder / "participants.png"
    fig.savefig(participants)
    plt.close(fig)
    return [accuracy, participants]


def central_records(fairfl: Any, store: Any, task_id: int) -> list[dict[str, Any]]:
    """Participant-level DP's record of each finalised round, from its evidence (the round
    and what :class:`fl_agent.privacy.central.DPFedAvgRecord` holds; an evidence that cannot
    be read, or holds none, gives the round and ``"error"``)."""
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.chain.records import RoundResult
    from fl_agent.errors import FairFLError

    records = []
    for log in fairfl.ledger.events("RoundFinalized", taskId=task_id):
        number = int(log.round)
        try:
            evidence = RoundEvidence.from_json(store.get(
                RoundResult.from_chain(log.result).evidence_cid))
        except FairFLError as err:
            records.append({"round": number, "error": str(err)})
            continue
        records.append({"round": number, **(evidence.dp_fedavg or {"error": "no record"})})
    return records


def privacy_section(fairfl: Any, store: Any, task_id: int, document: Any,
                    final_params: np.ndarray, watermark_keys: dict[str, Any]) -> dict[str, Any]:
    """The report's ``privacy`` section, read back from the chain and the store, not from
    the agents: the mode, each participant's ε spent (the last receipt it published) and
    bytes per update (mean over its receipts), under participant-level DP each round's
    DP-FedAvg record and the ε the task has spent, and, when the task watermarks, each
    participant's watermark verified on the final model with its key, the key checked
    against its on-chain commitment."""
    from fl_agent.errors import FairFLError
    from fl_agent.privacy.plan import PrivacyReceipt

    plan = document.privacy
    section: dict[str, Any] = {"mode": plan.mode().label() if plan else "plain",
                               "plan": plan.model_dump(mode="json") if plan else None}
    people: dict[str, dict[str, Any]] = {}
    for log in fairfl.ledger.events("UpdateSubmitted", taskId=task_id):
        cid = str(log.privacyCid)
        if not cid:
            continue
        entry = people.setdefault(str(log.participant).lower(), {"updates": 0, "bytes": 0})
        try:
            receipt = PrivacyReceipt.from_json(store.get(cid))
        except FairFLError as err:  # the aggregator refused its update for it too
            entry.setdefault("bad_receipts", []).append(f"{cid}: {err}")
            continue
        entry["updates"] += 1
        entry["bytes"] += receipt.update_bytes
        if receipt.epsilon_spent is not None:
            entry["epsilon_spent"] = receipt.epsilon_spent
    for entry in people.values():  # "updates" counts the receipts that could be read
        read = entry["updates"]
        entry["bytes_per_update"] = entry.pop("bytes") / read if read else None
    section["participants"] = people
    spent = [e["epsilon_spent"] for e in people.values() if "epsilon_spent" in e]
    if spent:
        section["epsilon_spent_max"] = max(spent)
        section["delta"] = plan.dp.delta
    if plan and plan.dp and plan.dp.level == "participant":
        section["dp_fedavg"] = central_records(fairfl, store, task_id)
        spent = [r["epsilon"] for r in section["dp_fedavg"] if "epsilon" in r]
        if spent:
            section["epsilon_spent_max"] = max(spent)
            section["delta"] = plan.dp.delta
    sizes = [e["bytes_per_update"] for e in people.values() if e["bytes_per_update"]]
    if sizes:
        section["bytes_per_update_mean"] = float(np.mean(sizes))
    if watermark_keys:
        from fl_agent.privacy.watermark import commitment, verify

        marks = {}
        for address, key in watermark_keys.items():
            result = verify(document.model, final_params, key)
            committed = fairfl.ledger.watermark_commitment(task_id, address)
            marks[address.lower()] = {
                "match_rate": result.match_rate, "p_value": result.p_value,
                "verified": result.verified,
                "commitment_matches": committed.commitment == commitment(key, address, task_id),
                "committed_in_block": committed.block}
        section["watermarks"] = marks
        section["watermarks_verified"] = sum(m["verified"] and m["commitment_matches"]
                                             for m in marks.values())
    return section
