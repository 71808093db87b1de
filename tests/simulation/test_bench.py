"""The benchmark table: rows against the issue's targets, per seed, and its Markdown."""

from __future__ import annotations

import pytest

from fl_agent.simulation.bench import bench_markdown, bench_rows


def report(seed, aggregator="fairfl", attack="label_flip", accuracy=0.95, tpr=1.0, fpr=0.0,
           malicious=("0xbad",), blacklisted=("0xbad",), reward_share=0.0, asr=None):
    final = {"accuracy": accuracy, "f1_macro": accuracy}
    if asr is not None:
        final["backdoor_asr"] = asr
    return {"config": {"seed": seed, "aggregator": aggregator, "attack": attack},
            "final": final, "detection": {"tpr": tpr, "fpr": fpr},
            "malicious": list(malicious), "blacklisted": list(blacklisted),
            "reward_share_malicious": reward_share, "seconds": 40.0,
            "chain": {"gas_total": 38_400_000, "transactions": 400}}


def clean(seed, accuracy):
    return report(seed, "fedavg", "none", accuracy, malicious=(), blacklisted=())


def test_each_run_is_compared_with_the_clean_run_of_its_own_seed():
    rows = bench_rows([clean(1, 0.96), report(1, accuracy=0.94),
                       clean(2, 0.90), report(2, accuracy=0.88)])
    assert [(r["seed"], r["clean_accuracy"]) for r in rows] == [(1, 0.96), (2, 0.90)]
    assert rows[0]["ratio"] == pytest.approx(0.94 / 0.96)
    assert rows[0]["checks"]["accuracy"]  # 0.979 >= 0.97
    assert rows[1]["checks"]["accuracy"]  # 0.978 >= 0.97; against seed 1's 0.96 it would fail


@pytest.mark.parametrize(("changes", "failed"), [
    ({"accuracy": 0.90}, "accuracy"),
    ({"tpr": 0.9}, "tpr"),
    ({"fpr": 0.06}, "fpr"),
    ({"blacklisted": ("0xbad", "0xgood")}, "blacklist"),
    ({"reward_share": 0.06}, "rewards"),
])
def test_every_target_is_checked(changes, failed):
    [row] = bench_rows([clean(1, 0.96), report(1, **changes)])
    assert [name for name, ok in row["checks"].items() if not ok] == [failed]


def test_without_attack_fairfl_may_lose_at_most_one_point():
    ok, lost = bench_rows([clean(1, 0.96), report(1, attack="none", accuracy=0.951,
                                                  malicious=(), blacklisted=()),
                           report(1, attack="none", accuracy=0.949, malicious=(),
                                  blacklisted=())])
    assert ok["checks"]["clean_gap"] and not lost["checks"]["clean_gap"]
    assert ok["tpr"] is None  # no attackers, no detection rate


def test_a_seed_without_its_clean_run_is_an_error():
    with pytest.raises(ValueError, match="seed 2"):
        bench_rows([clean(1, 0.96), report(2)])


def test_the_markdown_lists_every_seed_and_the_verdicts():
    rows = bench_rows([clean(1, 0.96), report(1, attack="backdoor", asr=0.0),
                       clean(3, 0.95), report(3, tpr=0.5)])
    text = bench_markdown(rows)
    assert "seeds 1, 3" in text
    assert "seed 1 accuracy **0.9600**" in text and "seed 3 accuracy **0.9500**" in text
    assert "All targets met in 1 of 2 runs." in text
    lines = [line for line in text.splitlines() if line.startswith("| 1 ") or
             line.startswith("| 3 ")]
    assert lines[0].startswith("| 1 | fairfl | backdoor | 0.9500 |") and "| 0.000 |" in lines[0]
    assert lines[0].endswith("| ✅ |")
    assert lines[1].endswith("| ❌ tpr |")
    assert bench_markdown([]) == "no runs\n"
