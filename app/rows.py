"""The tables the pages show, built from the folded history (:class:`chain_data.Views`).

Plain functions from views to ``pandas.DataFrame``s whose columns the pages configure; no
Streamlit calls here, so the pages stay a description of the UI.
"""

from __future__ import annotations

import pandas as pd

import chain_data as data
from fl_agent.agents.evidence import reason_name
from fl_agent.chain import history
from fl_agent.chain.records import RejectReason, TrainingMode
from ui import short


def _lower(address: str) -> str:
    return address.lower()


# -- models -----------------------------------------------------------------------------------
def models(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    """One row per listing: what it is, how good, its price and how it sells."""
    rows = []
    for m in views.listings.values():
        meta = data.listing_metadata(m.metadata_cid)
        task = views.tasks.get(m.task_id)
        rows.append({
            "model_id": m.model_id,
            "title": meta.title if meta else f"task {m.task_id} model",
            "dataset": meta.dataset if meta else "",
            "architecture": meta.model.name if meta else "",
            "metric": meta.metric if meta else (task.metric if task else ""),
            "score": meta.accuracy if meta else None,
            "price": info.amount(m.price),
            "sales": m.sales,
            "pending": sum(1 for p in m.purchases if p.status == history.PENDING),
            "revenue": info.amount(m.revenue),
            "contributors": len(task.earned) if task else 0,
            "rounds": task.rounds_planned if task else None,
            "task_id": m.task_id,
            "status": "for sale" if m.active else "delisted",
            "listed_block": m.listed_block,
            "link": f"model?model={m.model_id}",
        })
    return pd.DataFrame(rows, columns=[
        "model_id", "title", "dataset", "architecture", "metric", "score", "price", "sales",
        "pending", "revenue", "contributors", "rounds", "task_id", "status", "listed_block",
        "link"])


def earnings(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    """Each contributor's revenue across every model it helped train (the paper values a
    contributor by the data it gave, and a model by its sales)."""
    totals: dict[str, dict[str, float]] = {}
    for m in views.listings.values():
        task = views.tasks.get(m.task_id)
        if task is None:
            continue
        for who in task.earned:
            row = totals.setdefault(who, {"models": 0, "entitled": 0, "withdrawn": 0})
            row["models"] += 1
            row["entitled"] += history.entitlement(m, task, who)
            row["withdrawn"] += m.withdrawn.get(who, 0)
    rows = [{"contributor": views.participants[w].address if w in views.participants else w,
             "models": int(r["models"]), "earned": info.amount(int(r["entitled"])),
             "withdrawn": info.amount(int(r["withdrawn"])),
             "withdrawable": info.amount(int(r["entitled"] - r["withdrawn"]))}
            for w, r in totals.items()]
    frame = pd.DataFrame(rows, columns=["contributor", "models", "earned", "withdrawn",
                                        "withdrawable"])
    return frame.sort_values("earned", ascending=False, ignore_index=True)


def payees(listing: history.ListingView, task: history.TaskView,
           info: data.ChainInfo) -> pd.DataFrame:
    """The model's payees: the task's contributors, by the share of rewards they earned."""
    rows = [{"payee": task.address_of(who), "share_pct": 100 * task.share_of(who),
             "earned_in_task": info.amount(amount),
             "revenue": info.amount(history.entitlement(listing, task, who)),
             "withdrawn": info.amount(listing.withdrawn.get(who, 0))}
            for who, amount in task.earned.items() if amount]
    frame = pd.DataFrame(rows, columns=["payee", "share_pct", "earned_in_task", "revenue",
                                        "withdrawn"])
    return frame.sort_values("share_pct", ascending=False, ignore_index=True)


def watermarks(listing: history.ListingView, task: history.TaskView) -> pd.DataFrame:
    """The members who claimed that the model carries their ownership watermark, each claim
    checked as far as anyone without the weights can (:mod:`fl_agent.privacy.claims`); the
    bits are the claimant's word."""
    from fl_agent.privacy.claims import check_claims, task_facts

    facts = task_facts(task.task_id, data.task_plan(task.spec_cid), task.earned)
    checks = check_claims(task.watermark_claims, data.document, task=facts,
                          model_sha256=bytes.fromhex(listing.plaintext_hash.removeprefix("0x")))
    rows = [{"claimant": task.address_of(c.account),
             "check": "rejected: " + "; ".join(c.problems) if c.problems
             else "claimed: key matches its commitment, bits not re-checked",
             "bits": (f"{c.reported_matched}/{c.reported_bits}"
                      if c.reported_bits is not None else ""),
             "chance_without": c.reported_p_value, "claim_cid": c.claim_cid}
            for c in checks]
    return pd.DataFrame(rows, columns=["claimant", "check", "bits", "chance_without",
                                       "claim_cid"])


# -- tasks and rounds ---------------------------------------------------------------------------
def task_list(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    rows = [{"task_id": t.task_id, "status": t.status,
             "round": f"{t.current_round}/{t.rounds_planned}",
             "mode": TrainingMode(t.training_mode).label(), "metric": t.metric,
             "participants": len(t.participants),
             "rewarded": info.amount(t.total_rewarded), "created_block": t.created_block,
             "global_model_cid": t.global_model_cid}
            for t in views.tasks.values()]
    return pd.DataFrame(rows, columns=["task_id", "status", "round", "mode", "metric",
                                       "participants", "rewarded", "created_block",
                                       "global_model_cid"])


def lineage(task: history.TaskView, gas: dict[str, int]) -> pd.DataFrame:
    """Every round of a task: the model it started from and produced, who was aggregated,
    who was rejected and why, its transactions and their gas."""
    rows = []
    for rnd in task.rounds:
        evidence = data.round_evidence(rnd.evidence_cid)
        rows.append({
            "round": rnd.round,
            "status": "finalized" if rnd.finalized else "closed" if rnd.closed_block else "open",
            "global_model_cid": rnd.global_model_cid,
            "new_model_cid": rnd.new_model_cid,
            "submissions": len(rnd.submissions),
            "contributors": [short(c) for c in rnd.contributors],
            "rejected": [f"{short(w)} · {reason_name(c)}"
                         for w, c in zip(rnd.rejected, rnd.reasons, strict=False)],
            "validation": evidence.validation if evidence else None,
            "transactions": [short(tx) for tx in rnd.transactions],
            "gas": sum(gas.get(tx, 0) for tx in rnd.transactions) or None,
            "start_block": rnd.started_block,
            "finalized_block": rnd.finalized_block,
            "evidence_cid": rnd.evidence_cid,
        })
    return pd.DataFrame(rows, columns=[
        "round", "status", "global_model_cid", "new_model_cid", "submissions", "contributors",
        "rejected", "validation", "transactions", "gas", "start_block", "finalized_block",
        "evidence_cid"])


def members(task: history.TaskView, views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    rows = []
    for who in task.participants:
        key = _lower(who)
        accepted = sum(1 for r in task.rounds if any(_lower(c) == key for c in r.contributors))
        rejected = sum(1 for r in task.rounds if any(_lower(c) == key for c in r.rejected))
        person = views.participants.get(key)
        rows.append({"participant": who, "submitted": sum(
            1 for r in task.rounds if any(_lower(s.participant) == key for s in r.submissions)),
            "accepted_rounds": accepted, "rejected_rounds": rejected,
            "earned": info.amount(task.earned.get(key, 0)),
            "blacklisted": bool(person and person.blacklisted)})
    return pd.DataFrame(rows, columns=["participant", "submitted", "accepted_rounds",
                                       "rejected_rounds", "earned", "blacklisted"])


def rejections(task: history.TaskView) -> pd.DataFrame:
    rows = [{"round": rnd.round, "participant": who, "reason": reason_name(code),
             "evidence_cid": rnd.evidence_cid, "block": rnd.finalized_block or rnd.closed_block}
            for rnd in task.rounds for who, code in zip(rnd.rejected, rnd.reasons, strict=False)]
    return pd.DataFrame(rows, columns=["round", "participant", "reason", "evidence_cid",
                                       "block"])


def submissions(rnd: history.RoundView) -> pd.DataFrame:
    rows = [{"participant": s.participant, "update_cid": s.update_cid, "samples": s.samples,
             "training_ms": s.training_millis, "block": s.block} for s in rnd.submissions]
    return pd.DataFrame(rows, columns=["participant", "update_cid", "samples", "training_ms",
                                       "block"])


# -- participants -------------------------------------------------------------------------------
def leaderboard(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    earned: dict[str, int] = {}
    for task in views.tasks.values():
        for who, amount in task.earned.items():
            earned[who] = earned.get(who, 0) + amount
    rows = [{"participant": p.address, "label": short(p.address),
             "reputation_pct": p.reputation_bps / 100, "accepted": p.accepted,
             "rejected": len(p.rejections), "blacklisted": p.blacklisted,
             "earned": info.amount(earned.get(key, 0)),
             "standing": "blacklisted" if p.blacklisted else "in good standing"}
            for key, p in views.participants.items()]
    frame = pd.DataFrame(rows, columns=["participant", "label", "reputation_pct", "accepted",
                                        "rejected", "blacklisted", "earned", "standing"])
    return frame.sort_values(["reputation_pct", "earned"], ascending=False, ignore_index=True)


def reputation_history(views: data.Views, addresses: list[str]) -> pd.DataFrame:
    rows = []
    for address in addresses:
        person = views.participants[_lower(address)]
        rows.append({"label": short(person.address), "block": person.registered_block,
                     "task": None, "round": None, "reputation_pct": 50.0})
        rows += [{"label": short(person.address), "block": s.block, "task": s.task_id,
                  "round": s.round, "reputation_pct": s.reputation_bps / 100}
                 for s in person.history]
    return pd.DataFrame(rows, columns=["label", "block", "task", "round", "reputation_pct"])


def blacklist(views: data.Views) -> pd.DataFrame:
    """Every blacklisting with its evidence: governance's evidence CID, or the rejected
    updates (round, reason) that counted toward the automatic one (not those held back,
    which the registry does not count)."""
    rows = []
    for person in views.participants.values():
        for entry in person.blacklist:
            if entry.automatic:
                counted = [f"task {t} round {r}: {reason_name(c)}"
                           for t, r, c in person.rejections if c != RejectReason.HELD_BACK]
                evidence = "; ".join(counted[-3:]) or "rejected updates"
            else:
                evidence = f"governance evidence {entry.evidence_cid}"
            rows.append({"participant": person.address, "block": entry.block,
                         "by": "automatic (rejections)" if entry.automatic else entry.by,
                         "evidence": evidence,
                         "status": "lifted" if entry.lifted_block else "blacklisted",
                         "tx": entry.tx})
    return pd.DataFrame(rows, columns=["participant", "block", "by", "evidence", "status", "tx"])


# -- an account ---------------------------------------------------------------------------------
def purchases(views: data.Views, account: str, info: data.ChainInfo) -> pd.DataFrame:
    rows = []
    for m in views.listings.values():
        p = m.purchase_of(account)
        if p is None:
            continue
        meta = data.listing_metadata(m.metadata_cid)
        rows.append({"model_id": m.model_id, "title": meta.title if meta else "",
                     "price": info.amount(p.price), "status": p.status,
                     "purchased_block": p.purchased_block, "deadline_block": p.deadline_block,
                     "delivered_block": p.delivered_block})
    return pd.DataFrame(rows, columns=["model_id", "title", "price", "status",
                                       "purchased_block", "deadline_block", "delivered_block"])


def revenue(views: data.Views, account: str, info: data.ChainInfo) -> pd.DataFrame:
    rows = []
    for m in views.listings.values():
        task = views.tasks.get(m.task_id)
        if task is None or not task.earned.get(_lower(account)):
            continue
        entitled = history.entitlement(m, task, account)
        withdrawn = m.withdrawn.get(_lower(account), 0)
        rows.append({"model_id": m.model_id, "task_id": m.task_id,
                     "share_pct": 100 * task.share_of(account), "sales": m.sales,
                     "revenue": info.amount(entitled), "withdrawn": info.amount(withdrawn),
                     "withdrawable": info.amount(entitled - withdrawn),
                     "withdrawable_units": entitled - withdrawn})
    return pd.DataFrame(rows, columns=["model_id", "task_id", "share_pct", "sales", "revenue",
                                       "withdrawn", "withdrawable", "withdrawable_units"])
