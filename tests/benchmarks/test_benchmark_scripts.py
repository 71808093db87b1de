"""The benchmark scripts still run (on tiny settings), so the figures in the docs can be
reproduced. Their numbers are not checked here: timings belong in the benchmarks."""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import click
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")


#: Offline benchmarks (no chain, no browser, no worker processes), run inside the test's own
#: process: a fresh interpreter spends about 5-6 s of CPU importing torch, Opacus,
#: scikit-learn and SciPy before a tiny run starts, and this file starts some fifty. The
#: others (a chain, Chromium, a process pool, timed threads) run as ``python -m``, and so
#: does any run given ``fresh=True``: the tests that compare two runs' figures make one of
#: them that way, so that the figures also hold from one process to the next.
IN_PROCESS = frozenset({
    "benchmarks.ban_null", "benchmarks.chance_exact",
    "benchmarks.claims", "benchmarks.fidelity", "benchmarks.held_out",
    "benchmarks.privacy_dp", "benchmarks.privacy_dp_explore", "benchmarks.privacy_dp_fedavg",
    "benchmarks.privacy_he", "benchmarks.privacy_he_wrap", "benchmarks.privacy_watermark",
    "benchmarks.round_reasons", "benchmarks.rule_alone", "benchmarks.trigger_piles",
    "benchmarks.watermark_trace"})


#: The longest an in-process run may take, as the subprocesses' timeout.
TIMEOUT_S = 600


#: The ape data folder ``make test`` gives this run, passed on to the scripts started with a
#: bare environment, so that they cache their contracts there and not in ``~/.ape``.
APE_HOME = {key: value for key, value in os.environ.items() if key == "APE_DATA_FOLDER"}


def _call(module: str, *args: str, fresh: bool = False) -> subprocess.CompletedProcess[str]:
    if module in IN_PROCESS and not fresh:
        return _call_here(module, *args)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT_S,
                          env={"PATH": str(Path(sys.executable).parent), "HOME": str(Path.home()),
                               **APE_HOME})


@pytest.mark.parametrize("module", sorted(IN_PROCESS))
def test_each_benchmark_run_in_process_also_starts_as_python_m(module):
    """The tests below call these modules' ``main()`` in this process; ``python -m`` still
    starts each of them."""
    done = _call(module, "--help", fresh=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "usage" in done.stdout.lower()


def _call_here(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in this process: the module's ``main()`` with ``sys.argv``
    set, from the repository, without FairFL's environment variables, its exit status read
    from ``SystemExit`` (an uncaught exception: 1, its traceback on stderr, as Python
    would; one running past :data:`TIMEOUT_S` is stopped the same way). The thread pools
    the benchmarks pin to 1 (torch's, and BLAS's and OpenMP's through threadpoolctl) are
    put back, those of libraries the run loaded included."""
    import signal

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    def too_long(signum: int, frame: object) -> None:
        raise TimeoutError(f"{module} ran past {TIMEOUT_S} s")

    out, err = io.StringIO(), io.StringIO()
    pools: dict[str, int] = {}
    for pool in threadpool_info():
        pools[pool["user_api"]] = max(pools.get(pool["user_api"], 1), pool["num_threads"])
    saved = (sys.argv, os.getcwd(), torch.get_num_threads(),
             {k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith("FAIRFL_")]})
    sys.argv = [module, *args]
    os.chdir(REPO)
    code = 0
    alarm = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(TIMEOUT_S)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                importlib.import_module(module).main()
            except SystemExit as stop:
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
            except Exception:  # noqa: BLE001 - reported as the interpreter would
                traceback.print_exc()
                code = 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, alarm)
        sys.argv, cwd, threads, environment = saved
        os.chdir(cwd)
        torch.set_num_threads(threads)
        threadpool_limits(limits=pools)  # every pool, those the run loaded too
        os.environ.update(environment)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def run(module: str, *args: str, fresh: bool = False) -> str:
    done = _call(module, *args, fresh=fresh)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def run_fails(module: str, *args: str) -> str:
    """A run that must stop with a usage error; its message."""
    done = _call(module, *args)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stderr


def test_the_market_benchmark_delivers_every_key(tmp_path):
    out = tmp_path / "market.json"
    table = run("benchmarks.market", "--purchases", "5", "--live", "5", "--rate", "20",
                "--poll-interval", "0.5", "--json", str(out))
    result = json.loads(out.read_text())
    # Agent down: 5 permits and 1 approve, served in one deliverKeys once it starts.
    assert result["purchases"] == 6 and result["delivered"] == 6 and result["missing"] == []
    assert result["delivery_transactions"] == 1
    assert result["latency_blocks_from_agent_start"]["max"] == 1
    # Live: the running agent serves the 5 that arrive while it polls.
    assert result["live"]["purchases"] == 5 and result["live"]["delivered"] == 5
    assert len(result["live"]["timeline"]) == 5
    # Every purchase DELIVERED on chain, with exactly one KeyDelivered each.
    accounting = result["accounting"]
    assert accounting["complete"]
    assert accounting["buyers"] == accounting["delivered_on_chain"] == 11
    assert accounting["key_delivered_events"] == 11
    assert accounting["not_delivered"] == accounting["buyers_served_twice"] == []
    assert {"p50", "p90", "p99", "max"} <= set(result["live"]["latency_s"])
    assert result["gas"]["permit_and_buy"]["n"] == 10 and result["gas"]["per_delivered_key"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
    assert "latency from the purchase" in table


@pytest.mark.parametrize("client", ["browser", "api"])
def test_the_app_load_benchmark_renders_every_page_in_every_session(tmp_path, client):
    # The app tests' rule (tests/app/conftest.py): no Chromium (or nginx) skips, unless the run
    # asked for the browser tests (`make test`, which installs both), where it must be there.
    missing = (client == "browser" and not CHROMIUM.exists() and "/usr/bin/chromium") or (
        client == "api" and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists())
        and "nginx")
    if missing:
        message = f"no {missing}; `make test` installs it (apt-get install -y chromium nginx-light)"
        if os.environ.get("FAIRFL_WITH_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "app_load.json"
    # The browser drives one server; the API client two behind nginx (app/serve.py).
    workers = 1 if client == "browser" else 2
    table = run("benchmarks.app_load", "--tasks", "2", "--blocks", "120", "--sessions", "2",
                "--single-seconds", "2", "--seconds", "3", "--think", "0.2",
                "--client", client, "--workers", str(workers), "--json", str(out))
    result = json.loads(out.read_text())
    assert result["server_survived"] and result["settings"]["client"] == client
    assert result["settings"]["workers"] == workers
    assert list(result["phases"]) == ["1 session", "2 sessions"]
    pages = {"Models", "Model detail", "Tasks", "Participants", "My account"}
    for phase in result["phases"].values():
        assert phase["errors"] == 0, phase["error_samples"]
        assert {page for page, spread in phase["pages_s"].items() if spread} == pages
    # Each of the two sessions walked through every page at least once.
    assert result["phases"]["2 sessions"]["renders"] >= 2 * len(pages)
    assert result["target"]["errors"] == 0
    assert out.with_suffix(".png").stat().st_size > 0
    assert "every page" in table


def test_the_page_benchmark_renders_every_page(tmp_path):
    out = tmp_path / "pages.json"
    table = run("benchmarks.app_pages", "--tasks", "2", "--blocks", "120", "--skip-demo",
                "--json", str(out))
    result = json.loads(out.read_text())["2 tasks"]
    assert result["blocks"] >= 120
    assert set(result["pages"]) == {"Models", "Model detail", "Tasks", "Participants",
                                    "My account"}
    assert "index built from nothing" in table


def test_the_claims_benchmark_shows_what_a_claim_buys_under_each_rule(tmp_path):
    out = tmp_path / "claims.json"
    table = run("benchmarks.claims", "--seeds", "101", "--rounds", "1", "--clients", "8",
                "--json", str(out))
    rows = {(r["rule"], r["scenario"]): r for r in json.loads(out.read_text())}
    assert len(rows) == 10
    # The rule before issue 11 paid for the lie: the harness can tell the rules apart.
    before = rows["before", "claims 1e6"]
    assert before["share"] > 2 * before["honest_share"]
    # The subject has the median amount of data: the cap leaves its lie without effect.
    now = rows["on chain", "claims 1e6"]
    assert now["share"] == pytest.approx(now["honest_share"], rel=0.05)
    assert "sybil split" in table and "ratio (median)" in table


def test_the_rule_alone_benchmark_compares_every_rule_with_the_perfect_detector(tmp_path):
    out = tmp_path / "rule_alone.json"
    table = run("benchmarks.rule_alone", "--seeds", "101", "--attacks", "sign_flip,backdoor",
                "--rules", "fairfl,fedavg", "--rounds", "1", "--json", str(out))
    rows = json.loads(out.read_text())
    assert {(r["attack"], r["rule"]) for r in rows} == {
        (a, r) for a in ("sign_flip", "backdoor")
        for r in ("fairfl", "fedavg", "perfect detector")}
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert all((r["asr"] is None) == (r["attack"] not in ("backdoor", "targeted_flip"))
               for r in rows)
    assert "| sign_flip |" in table and "perfect detector" in table


def test_a_rules_accuracy_does_not_depend_on_the_rules_run_before_it(tmp_path):
    """A gaussian attacker draws from a generator made with the federation: rules that
    shared one got the draws the rules before them had left."""
    accuracy = {}
    for rules in ("fedavg,median", "median"):
        out = tmp_path / f"{rules}.json"
        run("benchmarks.rule_alone", "--seeds", "101", "--attacks", "gaussian", "--rules",
            rules, "--rounds", "2", "--json", str(out), fresh=rules == "median")
        accuracy[rules] = next(r["accuracy"] for r in json.loads(out.read_text())
                               if r["rule"] == "median")
    assert accuracy["fedavg,median"] == accuracy["median"]


def test_the_sweep_resumes_and_reports_every_cell_with_its_heat_maps(tmp_path):
    runs, out = tmp_path / "runs.jsonl", tmp_path / "sweep.json"
    grid = ["--datasets", "breast_cancer", "--attacks", "none,sign_flip", "--alphas", "0.5",
            "--malicious", "0.3", "--rules", "fairfl,median", "--seeds", "101", "--rounds",
            "2", "--workers", "1", "--runs", str(runs), "--json", str(out),
            "--plots", str(tmp_path)]
    table = run("benchmarks.sweep", *grid)
    lines = runs.read_text().splitlines()
    # none runs once per α (no attackers), sign_flip once per share; two rules, one seed
    assert len(lines) == 4
    result = json.loads(out.read_text())
    assert [(c["attack"], c["malicious"]) for c in result["cells"]] == [
        ("none", 0.0), ("sign_flip", 0.3)]
    assert set(result["cells"][1]["rules"]) == {"fairfl", "median"}
    assert len(result["goal"]) == 2 and "within 1 point of the best rule" in table
    assert (tmp_path / "sweep_breast_cancer_fpr.png").stat().st_size > 0
    run("benchmarks.sweep", *grid)  # resumes: nothing to run again
    assert runs.read_text().splitlines() == lines
    # the kept rows are made again and match; a row changed by hand is named, exit 1
    checked = run("benchmarks.sweep", *grid, "--verify", "2")
    assert "2 of 2 runs made again match their kept rows in every metric" in checked
    forged = [json.loads(line) for line in lines]
    forged[0]["accuracy"] += 0.01
    runs.write_text("".join(json.dumps(row) + "\n" for row in forged))
    done = _call("benchmarks.sweep", *grid, "--verify", "4")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 of 4 runs made again match" in done.stdout
    assert f"differs {{\"accuracy\": [{forged[0]['accuracy']}" in done.stdout
    # --verify-banned draws only the runs that banned that many: here the forged one alone
    forged[0]["benign_blacklisted"] = 50
    runs.write_text("".join(json.dumps(row) + "\n" for row in forged))
    done = _call("benchmarks.sweep", *grid, "--verify", "4", "--verify-banned", "50")
    assert done.returncode == 1 and "0 of 1 runs made again match" in done.stdout
    assert "at least 51 accounts" in run_fails("benchmarks.sweep", *grid, "--verify", "4",
                                               "--verify-banned", "51")
    assert "unknown rule 'nope'" in run_fails("benchmarks.sweep", "--rules", "fairfl,nope")
    assert "unknown dataset" in run_fails("benchmarks.sweep", "--datasets", "mnist")


def test_the_ablation_swaps_fairfls_clustering(tmp_path):
    out = tmp_path / "ablation.json"
    table = run("benchmarks.ablation", "--datasets", "breast_cancer", "--attacks", "sign_flip",
                "--alphas", "0.5", "--malicious", "0.3", "--rules", "dbscan,kmeans,none",
                "--seeds", "101", "--rounds", "1", "--workers", "1", "--runs",
                str(tmp_path / "runs.jsonl"), "--json", str(out), "--plots", str(tmp_path))
    (cell,) = json.loads(out.read_text())["cells"]
    assert set(cell["rules"]) == {"dbscan", "kmeans", "none"}
    assert "dbscan within 1 point" in table


def test_the_fidelity_benchmark_ranks_every_estimator_against_exact_shapley(tmp_path):
    out = tmp_path / "fidelity.json"
    table = run("benchmarks.fidelity", "--seeds", "101", "--rounds", "1", "--measure", "1",
                "--clients", "4", "--json", str(out))
    result = json.loads(out.read_text())
    assert {r["setting"] for r in result["rounds"]} == {"clean", "25 % label flippers"}
    assert all(len(r["players"]) in (3, 4) for r in result["rounds"])
    for row in result["rounds"]:
        assert set(row["spearman"]) == {"scored", "sampler-40", "truncated-40",
                                        "leave-one-out", "data size", "paid"}
        # 3 or 4 players have at most 24 orders: the sampler takes every one of them, so
        # it is exact and must agree with the subset formula written in the benchmark.
        for name in ("scored", "sampler-40"):
            np.testing.assert_allclose(row["estimates"][name], row["exact"], atol=1e-12)
            assert sum(row["exact"]) == pytest.approx(sum(row["estimates"][name]),
                                                      abs=1e-9)  # both are efficient
        # truncation stops where the prefix scores as the whole set: still efficient
        assert sum(row["estimates"]["truncated-40"]) == pytest.approx(sum(row["exact"]),
                                                                      abs=1e-8)
        assert row["evaluations"]["truncated-40"] <= row["evaluations"]["sampler-40"]
    assert "exact (2^n subsets)" in table
    assert "--clients" in run_fails("benchmarks.fidelity", "--clients", "20")
    assert out.with_suffix(".png").stat().st_size > 10_000  # the plot beside the JSON
    again = run("benchmarks.fidelity", "--report-only", "--json", str(out), "--plot",
                str(tmp_path / "again.png"))
    assert again.split("\n\nplot:")[0] in table and (tmp_path / "again.png").exists()


def test_the_scale_benchmark_times_every_rule_and_the_store_against_sha256(tmp_path):
    out = tmp_path / "scale.json"
    table = run("benchmarks.scale", "--clients", "6,12", "--params", "2000",
                "--rules", "fairfl,median", "--storage-mb", "1", "--repeat", "1",
                "--json", str(out))
    result = json.loads(out.read_text())
    assert {(r["rule"], r["clients"]) for r in result["aggregation"]} == {
        (rule, n) for rule in ("fairfl", "median", "copy groups") for n in (6, 12)}
    fairfl = [r for r in result["aggregation"] if r["rule"] == "fairfl"]
    assert all(r["gate_calls"] > 0 and r["peak_mb"] > 0 and r["first_seconds"] > 0
               for r in fairfl)
    (store,) = result["storage"]
    assert set(store["mb_per_s"]) == {"sha256", "sha256_all_cores", "add", "get"}
    assert set(store["add_parts_ms"]) == {"add", "cid", "write", "write_without_fsync"}
    assert all(ms > 0 for ms in store["add_parts_ms"].values())
    assert "growth in clients" in table and "add / all cores" in table
    assert "Peak of traced memory" in table and "`add`'s parts" in table
    assert out.with_suffix(".png").stat().st_size > 10_000  # the growth plot beside it
    # the tables again from the JSON alone, and a clear error without one
    assert run("benchmarks.scale", "--report-only", "--json", str(out)).strip() in table
    assert "no run at" in run_fails("benchmarks.scale", "--report-only", "--json",
                                    str(tmp_path / "missing.json"))
    assert "unknown rule" in run_fails("benchmarks.scale", "--rules", "nope")


def test_the_round_benchmark_times_every_part_of_a_real_round(tmp_path):
    out = tmp_path / "round.json"
    table = run("benchmarks.round_scale", "--clients", "10", "--hidden", "8", "--rounds", "2",
                "--json", str(out), "--profile", str(tmp_path / "round.prof"), "--threads", "1")
    assert "validation_gate" in table and (tmp_path / "round.prof").stat().st_size > 0
    result = json.loads(out.read_text())
    assert result["params"] == 64 * 8 + 8 + 8 * 10 + 10 and len(result["rounds"]) == 2
    for row in result["rounds"]:
        assert set(row["seconds"]) == {"copy groups", "rule", "scoring", "evidence"}
        assert all(value >= 0 for value in row["seconds"].values())
        assert row["seconds"]["copy groups"] > 0  # the Gram matrix is timed where it is made
        assert row["clients"] == 10 and 0 < row["accepted"] <= 10 and row["torch_threads"] == 1
        assert row["gate_calls"] > 0 and row["scoring_evaluations"] > 0
        assert row["total_seconds"] >= row["without_scoring_seconds"]
    last = result["rounds"][-1]
    assert len(last["afresh_seconds"]) >= 3 and last["seconds_per_scoring_evaluation"] > 0
    assert "total without scoring" in table and "Valuing one coalition afresh" in table
    assert "--hidden" in run_fails("benchmarks.round_scale", "--hidden", "0")
    assert "--clients must be 2 to 200" in run_fails("benchmarks.round_scale", "--clients", "1")
    assert "--threads must be at least 1" in run_fails("benchmarks.round_scale", "--threads", "0")
    assert "on 1 torch thread(s)" in table


def test_the_round_benchmark_times_leave_one_out_scoring_when_asked(tmp_path):
    """``--scoring loo`` values each player's absence once: the full set plus one coalition
    per player, where Shapley values (the default) need more at this size."""
    out = tmp_path / "round.json"
    run("benchmarks.round_scale", "--clients", "10", "--hidden", "8", "--rounds", "1",
        "--json", str(out), "--threads", "1", "--scoring", "loo")
    result = json.loads(out.read_text())
    assert result["scoring"] == "loo"
    row = result["rounds"][0]
    assert row["players"] >= 3 and row["scoring_evaluations"] == row["players"] + 1
    assert 0 <= row["positive_scores"] <= row["accepted"]


def test_the_closeness_harness_measures_copies_against_honest_pairs(tmp_path):
    out = tmp_path / "claims.json"
    run("benchmarks.claims", "--closeness", "--seeds", "101", "--rounds", "1",
        "--json", str(out))
    rows = json.loads((tmp_path / "closeness.json").read_text())
    assert len(rows) == 4
    assert all(r["farthest_copies"] < r["closest_honest"] for r in rows)


def test_the_held_out_benchmark_scores_every_run_against_the_targets(tmp_path):
    out = tmp_path / "held_out.json"
    table = run("benchmarks.held_out", "--seeds", "101", "--rounds", "2", "--attacks",
                "none,sign_flip-every-2", "--json", str(out))
    made = json.loads(out.read_text())
    assert made["settings"]["seeds"] == "101" and "commit" in made["machine"]
    rows = {r["attack"]: r for r in made["rows"]}
    assert rows["none"]["tpr"] is None and rows["sign_flip-every-2"]["tpr"] is not None
    assert {"ratio", "fpr", "malicious_reward", "benign_blacklisted", "failed"} \
        <= set(rows["none"])
    assert "sign_flip-every-2" in table and rows["none"]["partition"] == "dirichlet"
    assert rows["none"]["noise_check"] and isinstance(rows["none"]["honest_reasons"], dict)
    assert rows["none"]["smallest_scale"] < 0.2  # digits: pixels nearly always blank
    run("benchmarks.held_out", "--seeds", "101", "--rounds", "1", "--attacks", "none",
        "--partition", "iid", "--no-noise-check", "--scale-floor", "0.25", "--json", str(out))
    [row] = json.loads(out.read_text())["rows"]
    assert row["partition"] == "iid" and row["noise_check"] is False
    assert 1.0 < row["smallest_scale"] < 1.2  # R63's floor: a quarter of the median scale
    # of the pixels that vary (about 4.3 on digits)
    assert "--scale-floor needs a share" in run_fails("benchmarks.held_out", "--scale-floor",
                                                      "2")
    table = run("benchmarks.held_out", "--seeds", "101", "--rounds", "1", "--attacks",
                "sign_flip", "--watermark", "--length-cap", "2", "--json", str(out))
    [row] = json.loads(out.read_text())["rows"]
    assert row["length_cap"] == 2.0
    marks = row["watermarks"]  # 6 of the 20 attack, the other 14 embed their keys
    assert row["watermark"] and marks["honest"] == 14 and "honest keys verified" in table
    assert row["noise_check"] is False  # a watermark task runs without the NOISE check
    assert 0 <= marks["verified"] == 14 - len(marks["not_verified"])
    assert set(marks["not_verified_banned"]) <= set(marks["not_verified"])
    assert "--share-cap needs --watermark reach" in run_fails("benchmarks.held_out",
                                                                "--share-cap", "2")
    assert "--reach needs --watermark reach" in run_fails("benchmarks.held_out", "--reach",
                                                          "0.3")
    assert "--length-cap needs --watermark reach" in run_fails("benchmarks.held_out",
                                                               "--length-cap", "1")
    bad = run_fails("benchmarks.held_out", "--attacks", "no_such_attack")
    assert "unknown attack 'no_such_attack'" in bad
    assert "would never attack" in run_fails("benchmarks.held_out", "--rounds", "3",
                                             "--attacks", "sign_flip-from-4")


def test_the_trigger_pile_benchmark_sets_honest_updates_beside_the_attackers(tmp_path):
    out = tmp_path / "piles.json"
    table = run("benchmarks.trigger_piles", "--seeds", "1", "--rounds", "2", "--attacks",
                "none,backdoor", "--partitions", "iid", "--json", str(out))
    result = json.loads(out.read_text())
    none, backdoor = result["piles"]
    assert [r["round"] for r in none["rounds"]] == [1, 2]
    rare = result["rare_features"]  # digits' nearly blank pixels, far out once standardised
    assert rare["rare"] and all(f["largest_standardised"] > 10 for f in rare["rare"])
    assert len(rare["trigger"]["features"]) == 4
    assert none["rounds"][0]["attackers_min"] is None
    # the corner trigger piles far more than any honest update in the first round
    first = backdoor["rounds"][0]
    assert 0 < first["honest_max"] < 0.2 < first["attackers_min"] <= 1
    assert "| iid | backdoor |" in table
    assert "unknown split" in run_fails("benchmarks.trigger_piles", "--partitions", "x")


def test_the_load_benchmark_accounts_for_every_submission_of_every_process(tmp_path):
    out = tmp_path / "load.json"
    table = run("benchmarks.load", "--participants", "3", "--rounds", "2", "--poll-interval",
                "0.5", "--block-time", "1", "--json", str(out))
    result = json.loads(out.read_text())
    accounting = result["accounting"]
    assert accounting["complete"] is True
    assert accounting["expected"] == accounting["submitted"] == accounting["accounted"] == 6
    assert accounting["lost"] == accounting["duplicated"] == accounting["unaccounted"] == []
    assert set(result["exit_codes"]) == {"create", "aggregator", "participant-00",
                                         "participant-01", "participant-02"}
    assert all(code == 0 for code in result["exit_codes"].values())
    latency = result["latency_ms"]
    assert len(latency["updates"]) == 6 and len(latency["rounds"]) == 2  # every stopwatch joined
    for component in (*latency["per_update"].values(), *latency["per_round"].values()):
        assert {"p50", "p90", "p99", "max"} <= set(component)
    assert {"cores", "ram_gb", "versions"} <= set(result["machine"])
    assert (tmp_path / "load.png").stat().st_size > 0
    assert "every submission accounted for" in table and "| p50 |" in table
    # A block a second: RoundFinalized comes at least two blocks after RoundStarted (the
    # submissions in between), and the round's time, from before startRound was mined,
    # covers those blocks.
    blocks = result["blocks"]
    assert blocks["block_time_s"] == 1 and len(blocks["rounds"]) == 2
    started = {s["round"]: s["block"] for s in result["chain"]["started"]}
    finalized = {f["round"]: f["block"] for f in result["chain"]["finalized"]}
    for row, timed in zip(blocks["rounds"], latency["rounds"], strict=True):
        path = timed["critical_path_ms"]
        assert row["blocks"] == finalized[row["round"]] - started[row["round"]] >= 2
        # seconds of the round less training, in blocks of one second
        assert row["beyond_training_blocks"] == pytest.approx(
            (timed["round_ms"] - path["training"]) / 1000, abs=1e-3)
        assert row["beyond_training_and_aggregation_blocks"] == pytest.approx(
            (timed["round_ms"] - path["training"] - path["aggregation"]) / 1000, abs=1e-3)
        # the round, counted from before startRound was mined, covers its blocks
        assert row["blocks"] - 1 <= row["beyond_training_blocks"] <= row["blocks"] + 60
    assert "overhead beyond training" in table and "a block every 1 s" in table


def test_the_load_report_counts_blocks_only_when_blocks_are_timed():
    from benchmarks.load import in_blocks, markdown

    chain = {"started": [{"round": 1, "block": 10}, {"round": 2, "block": 14}],
             "finalized": [{"round": 1, "block": 13}, {"round": 2, "block": 16}]}
    rounds = [{"round": 1, "round_ms": 7_000.0,
               "critical_path_ms": {"training": 1_000.0, "aggregation": 2_000.0}},
              {"round": 2, "round_ms": 4_500.0,
               "critical_path_ms": {"training": 500.0, "aggregation": 1_000.0}}]
    blocks = in_blocks(chain, rounds, block_time=2)
    assert [(r["blocks"], r["beyond_training_blocks"],
             r["beyond_training_and_aggregation_blocks"]) for r in blocks["rounds"]] \
        == [(3, 3.0, 2.0), (2, 2.0, 1.5)]
    assert blocks["beyond_training_blocks"]["max"] == 3.0
    # a block per transaction: the report says so and has no table in blocks
    empty = {"n": 0}
    result = {"latency_ms": {"per_update": {}, "per_round": {}, "critical_path": {
                  c: {} for c in ("waiting", "chain", "storage", "training",
                                  "set-up and sealing", "aggregation")}},
              "accounting": {"complete": True, "submitted": 0, "expected": 0, "accounted": 0,
                             "accepted": 0, "rejected": 0, "blacklisted": {}},
              "resources": {k: 0 for k in ("available_memory_before_gb",
                                           "min_available_memory_gb",
                                           "agents_peak_uss_total_gb",
                                           "agent_peak_uss_median_mb", "cpu_busy_share",
                                           "agents_cpu_seconds", "anvil_cpu_seconds")},
              "settings": {"participants": 1, "rounds": 1, "poll_interval": 2.0,
                           "threads": 1, "block_time": None},
              "wall_s": {"rounds": 1.0, "startup": 1.0, "total": 2.0},
              "stopped": None, "rounds_checked": 1, "machine": {"cores": 2, "ram_gb": 1}}
    result["latency_ms"]["per_update"] = {k: empty for k in ("training", "storage", "chain",
                                                             "notice", "submitted")}
    result["latency_ms"]["per_round"] = {k: empty for k in (
        "aggregation", "aggregator_fetch", "finalize_tx", "open", "aggregator_wait",
        "all_submitted", "round")}
    text = markdown(result)
    assert "a block mined for each transaction" in text and "in blocks of" not in text
    result["settings"]["block_time"], result["blocks"] = 2, blocks
    assert "| a round in blocks of 2 s |" in markdown(result)


def test_the_gas_benchmark_adds_up_and_never_goes_below_a_floor(tmp_path):
    from benchmarks.gas_cost import BULK, MAIN_FUNCTIONS
    from benchmarks.gas_other import OTHER_FUNCTIONS
    from benchmarks.l2_fee import flz_compress_len

    # FastLZ lengths of op-geth's test vectors (the Fjord L1 fee compresses with it).
    assert flz_compress_len(bytes(1000)) == 21
    assert flz_compress_len(bytes.fromhex(
        "dd80808094095e7baea6a6c7c4c2dfeb977efac326af552d878080808080")) == 31
    out = tmp_path / "gas_cost.json"
    table = run("benchmarks.gas_cost", "--participants", "2,3", "--rounds", "1",
                "--json", str(out))
    result = json.loads(out.read_text())
    assert [p["participants"] for p in result["passes"]] == [2, 3]
    for n, rounds in result["rounds"].items():
        assert [r["kind"] for r in rounds] == ["normal", "rejections", "last"]
        for r in rounds:
            assert len(r["submitUpdate"]) == int(n)
            assert r["submitUpdate_sum"] == sum(r["submitUpdate"])
            assert r["total"] == r["startRound"] + r["submitUpdate_sum"] + r["finalizeRound"]
            assert r["per_participant"] == round(r["total"] / int(n))
            assert r["contributors"] + r["rejected"] == int(n)
            assert r["rejected"] == (1 if r["kind"] == "rejections" else 0)
    for p in result["passes"]:
        once = p["one_time"]["per_participant"]
        assert once["total"] == once["register"] + once["join"] + once["claimRewards"]
        m = p["normal_round"]
        assert m["total"] == m["startRound"] + m["submitUpdate_sum"] + m["finalizeRound"]
    # Every main function of every pass was traced and set against its floor, and every
    # other function once (resolveAppeal twice) in the pass of its own.
    floors = result["floors"]
    assert {(f["participants"], f["function"]) for f in floors} \
        == {(n, f) for n in (2, 3) for f in MAIN_FUNCTIONS}
    others = result["other_floors"]
    assert sorted(f["function"] for f in others) \
        == sorted([*OTHER_FUNCTIONS, "resolveAppeal"])
    assert not set(MAIN_FUNCTIONS) & set(OTHER_FUNCTIONS)
    for f in [*floors, *others]:
        parts = f["parts"]
        assert parts["storage"] == sum(w["gas"] for w in f["writes"])
        assert f["floor"] == max(sum(parts.values()), f["eip7623"]["floor"])
        assert f["gas"] >= f["floor"], f  # the real check: a floor above the gas is wrong
        assert not f["eip7623"]["binds_measured"]
        # The floor counts no write the code did not make (prestateTracer's diff), of any kind.
        made = f["written"]
        for kind in ("new", "update", "clear"):
            assert sum(w["count"] for w in f["writes"] if w["kind"] == kind) <= made[kind], f
        # measured - floor = writes beyond the floor + the rest (reads, calls, memory).
        assert f["gas"] - sum(parts.values()) == made["gas"] - parts["storage"] \
            + f["rest_after_written"]
    # finalizeRound writes exactly the slots its floor counts: 3 + 2 per settled member (+ the
    # status and, if some budget is left, the reservation in the last round).
    for f in floors:
        if f["function"] == "finalizeRound":
            ctx = f["context"]
            assert f["written"]["update"] == 3 + 2 * (ctx["contributors"] + ctx["rejected"]) \
                + ctx["last"] + (ctx["last"] and ctx["releases_budget"])
    assert sum(f["function"] in BULK for f in floors) == 2 * 2 * len(BULK)
    # The priced task adds up, in gas and in ETH.
    cost = result["cost"]
    assert cost["participants"] == 3 and cost["rounds"] == 20
    assert cost["total_gas"] == sum(p["gas"] for p in cost["parts"].values())
    assert cost["transactions"] == 1 + 3 * 3 + 19 * 5 + 5
    payers = cost["payers"]
    assert abs(payers["task creator"]["gas"] + payers["aggregator"]["gas"]
               + 3 * payers["each participant"]["gas"] - cost["total_gas"]) <= 3
    for row in cost["mainnet"]:
        assert row["eth"] == pytest.approx(cost["total_gas"] * row["gwei"] * 1e-9)
    for row in cost["l2"]:
        assert row["total_eth"] == pytest.approx(row["execution_eth"] + row["l1_data_eth"])
        assert 0 < row["l1_data_eth"] < row["total_eth"]
    assert result["deployment"]["total_gas"] > 0
    assert {"anvil", "solc", "hardfork"} <= set(result["machine"]["versions"])
    assert out.with_suffix(".png").stat().st_size > 0
    assert "against its floor" in table and "| `finalizeRound` (3 contributors) |" in table
    assert "| `deliverKeys` (2 buyers, first sale) |" in table


def test_the_privacy_benchmarks_run_on_tiny_settings(tmp_path):
    """DP, HE and watermarks, each as small as its options allow (figures: docs/privacy*)."""
    dp = tmp_path / "dp.json"
    run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
        "--rounds", "2", "--steps", "2", "--strategies", "fedavg", "--json", str(dp),
        "--plot", str(tmp_path / "dp.png"))
    made = json.loads(dp.read_text())
    assert {"settings", "calibrations", "runs"} <= set(made)
    assert made["settings"]["model"] == "mlp"
    assert made["runs"][0]["chance"] == pytest.approx(4 / np.sqrt(4810))  # the MLP's size
    attacked = tmp_path / "dp_attack.json"
    run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
        "--rounds", "2", "--steps", "2", "--strategies", "fairfl-dp", "--skip-no-dp",
        "--skip-clip-only", "--attack", "sign_flip", "--malicious", "0.34",
        "--accountant", "rdp",  # calibrates in a third of PRV's time; not what is tested
        "--model", "logreg", "--json", str(attacked), "--plot", str(tmp_path / "dp_attack.png"))
    made = json.loads(attacked.read_text())
    row, = made["runs"]
    assert made["settings"]["model"] == "logreg"  # 64 x 10 weights and 10 biases
    assert row["chance"] == pytest.approx(4 / np.sqrt(650))
    assert len(row["malicious"]) == 1 and 0.0 <= row["tpr"] <= 1.0  # FPR over the other two
    assert row["fpr"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    explore = tmp_path / "explore.json"
    run("benchmarks.privacy_dp_explore", "--seeds", "1", "--schedules", "const,x2",
        "--tails", "1,2", "--clients", "3", "--rounds", "2", "--steps", "2",
        "--json", str(explore))
    tried = json.loads(explore.read_text())["runs"]
    assert [r["schedule"] for r in tried] == ["const", "x2"]
    for row in tried:  # the mean of the last one global model is the final model
        assert row["tail_accuracy"]["1"] == row["accuracy"] == row["curve"][-1]
    assert tried[0]["curve"] != tried[1]["curve"]  # twice the lr trained another model
    central = tmp_path / "dp_fedavg.json"
    run("benchmarks.privacy_dp_fedavg", "--seeds", "1", "--epsilons", "8,512", "--clients",
        "3", "--rounds", "2", "--json", str(central), "--plot", str(tmp_path / "c.png"))
    rows = {r["level"]: r for r in json.loads(central.read_text())["rows"]}
    assert list(rows) == ["rule", "clip only", "ε = 8", "ε = 512"]
    assert rows["clip only"]["noise_length_over_clip"] == 0
    assert rows["ε = 8"]["sigma"] > rows["ε = 512"]["sigma"] > 0  # less budget, more noise
    assert rows["ε = 8"]["noise_length_over_clip"] > rows["ε = 512"]["noise_length_over_clip"]
    assert all(len(r["curve"]) == 2 for r in rows.values())
    he = tmp_path / "he.json"
    run("benchmarks.privacy_he", "--clients", "3", "--sizes", "5000", "--no-federation",
        "--json", str(he))
    assert json.loads(he.read_text())["rounds"]
    wrap = tmp_path / "wrap.json"
    run("benchmarks.privacy_he_wrap", "--trials", "2", "--json", str(wrap))
    summary = json.loads(wrap.read_text())["summary"]
    assert summary["honest_marked"] == 0 and summary["honest_updates"] == 8
    assert summary["kinds"]["hidden"]["marked"] == 2  # the crafted norm is caught...
    assert summary["kinds"]["hidden"]["accepted_without_check"] == 2  # ...and would pass
    wm = tmp_path / "wm.json"
    run("benchmarks.privacy_watermark", "--seeds", "1", "--rounds", "2",
        "--fine-tune-steps", "5", "--wrong-keys", "2", "--no-fairfl", "--json", str(wm),
        "--plot", str(tmp_path / "wm.png"))
    assert json.loads(wm.read_text())["rows"]
    run("benchmarks.privacy_watermark", "--seeds", "1", "--rounds", "1", "--bits", "32",
        "--fine-tune-steps", "5", "--wrong-keys", "2", "--no-fairfl", "--partition", "iid",
        "--json", str(wm), "--plot", str(tmp_path / "wm.png"))
    result = json.loads(wm.read_text())
    shares = result["rows"][0]["shares"]  # equal shards: 20 clients of about 5 % each
    assert result["settings"]["partition"] == "iid" and max(shares) - min(shares) < 0.002
    run("benchmarks.privacy_watermark", "--tune", "--seeds", "1", "--rounds", "1", "--bits",
        "32", "--reaches", "none,0.25", "--fine-tune-steps", "5", "--wrong-keys", "2",
        "--json", str(wm))
    grid = json.loads(wm.read_text())["rows"][0]["grid"]
    assert [g["settings"]["reach"] for g in grid] == [None, 0.25]
    assert [g["settings"]["length_cap"] for g in grid] == [None, None]  # the default: none
    assert all(0 <= g["fairfl"]["verified"] <= 20 for g in grid)
    assert "--reaches" in run_fails("benchmarks.privacy_watermark", "--reaches", "-1")
    assert "--share-caps" in run_fails("benchmarks.privacy_watermark", "--share-caps", "0.5")
    assert "--length-caps" in run_fails("benchmarks.privacy_watermark", "--length-caps", "0")
    trace = tmp_path / "trace.json"
    out = run("benchmarks.watermark_trace", "--seed", "1", "--rounds", "1", "--length-cap",
              "1", "--json", str(trace))
    traced = json.loads(trace.read_text())
    assert traced["length_cap"] == 1.0 and len(traced["rows"]) == 20
    assert all(r["submitted"] > 0 and r["unmarked"] > 0 and r["mark"] > 0
               for r in traced["rows"])
    assert f"refused {sum(1 for r in traced['rows'] if r['reason'])} of 20" in out
    assert "needs a reach" in run_fails("benchmarks.privacy_watermark", "--reaches", "none",
                                        "--length-caps", "1")


def test_a_dp_runs_figures_do_not_depend_on_the_other_runs_of_the_command(tmp_path):
    """A gaussian attacker's noise comes from a generator made with the federation: runs that
    shared one got the draws their predecessors left."""
    rows = {}
    for strategies in ("fedavg,fairfl-dp", "fairfl-dp"):
        out = tmp_path / f"{strategies}.json"
        run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
            "--rounds", "2", "--steps", "2", "--strategies", strategies, "--skip-no-dp",
            "--skip-clip-only", "--attack", "gaussian", "--malicious", "0.34",
            "--accountant", "rdp", "--json", str(out), "--plot", str(tmp_path / "dp.png"),
            fresh=strategies == "fairfl-dp")
        rows[strategies] = next(r for r in json.loads(out.read_text())["runs"]
                                if r["strategy"] == "fairfl-dp")
    # the closest cosines are the updates' own, the attacker's too, whether kept or not. A
    # draw left over by an earlier run changes them in the second or third digit; BLAS may
    # round the last bit differently in another process (seen once on a fresh clone:
    # 0.006590166003938506 against ...055), which is not what this test is about.
    assert rows["fedavg,fairfl-dp"]["curve"] == rows["fairfl-dp"]["curve"]
    assert rows["fedavg,fairfl-dp"]["closest_cosine"] == pytest.approx(
        rows["fairfl-dp"]["closest_cosine"], rel=1e-9, abs=0)


def test_the_dp_benchmark_schedules_attackers_that_build_credit_first(tmp_path):
    """--attack-from: honest rounds first (with --credit-without-noise, DP-SGD without its
    noise in them), TPR over the attack rounds only."""
    curves = {}
    for name, extra in (("from2", ["--attack-from", "2"]), ("from3", ["--attack-from", "3"]),
                        ("noiseless", ["--attack-from", "2", "--credit-without-noise"])):
        out = tmp_path / f"{name}.json"
        run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
            "--rounds", "3", "--steps", "10", "--strategies", "fairfl-dp", "--skip-no-dp",
            "--skip-clip-only", "--attack", "sign_flip", "--malicious", "0.34",
            "--accountant", "rdp", *extra, "--json", str(out), "--plot", str(tmp_path / "p.png"),
            fresh=name == "from3")
        made = json.loads(out.read_text())
        row, = made["runs"]
        first = 3 if name == "from3" else 2
        assert row["attack_rounds"] == list(range(first, 4))
        assert row["tpr"] in (0.0, 1.0) if first == 3 else row["tpr"] in (0.0, 0.5, 1.0)
        # its rejections in rounds before `first` are counted apart from the TPR
        attacked = sum(r for n, r in enumerate(row["rejected_per_round"], 1) if n >= first)
        assert row["attackers_rejected_when_honest"] <= sum(row["rejected_per_round"]) - attacked
        assert round(row["tpr"] * (4 - first)) <= attacked
        assert made["settings"]["schedule"]["first"] == first
        curves[name] = row["curve"]
    assert curves["from2"][0] == curves["from3"][0]  # round 1: honest in both
    assert curves["from2"][1] != curves["from3"][1]  # round 2: an attack in one
    assert curves["noiseless"][0] != curves["from2"][0]  # round 1 without the noise
    assert "model --attack" in run_fails("benchmarks.privacy_dp", "--attack", "label_flip",
                                         "--attack-every", "2")
    assert "honest rounds" in run_fails("benchmarks.privacy_dp", "--attack", "sign_flip",
                                        "--credit-without-noise")
    assert "give --attack sign_flip" in run_fails("benchmarks.privacy_dp", "--attack",
                                                  "gaussian", "--flip-scale", "10")


def test_an_attacker_drops_its_noise_only_in_its_honest_rounds_and_only_if_told():
    from benchmarks.privacy_dp import Calibration, noise_multiplier

    calibration = Calibration(8.0, (0.2, 0.3), (2.5, 4.0), (8.0, 8.0), True, True)
    assert noise_multiplier(calibration, 1, True, False, True) == 0.0  # credit, no noise
    assert noise_multiplier(calibration, 1, True, True, True) == 4.0  # attacks with noise
    assert noise_multiplier(calibration, 1, False, False, True) == 4.0  # honest client
    assert noise_multiplier(calibration, 1, True, False, False) == 4.0  # not told to
    assert noise_multiplier(None, 0, False, True, False) == 0.0  # σ = 0 (clipping alone)


def test_the_dp_benchmarks_rules_keep_their_published_meaning_whatever_a_new_task_records():
    """fairfl-dp is the single-round test with length outliers, as its published tables
    were made, though a new DP task's document records the sequential test."""
    from benchmarks.privacy_dp import Setting, honest_federation, strategy_for

    fed = honest_federation(1, Setting(clients=4, rounds=1, steps=1))
    rules = {name: strategy_for(fed, name) for name in (
        "fairfl-dp", "fairfl-dp-seq", "fairfl-dp-median-clip", "fairfl-dp-seq-no-outliers")}
    assert {n: r.sequential for n, r in rules.items()} == {
        "fairfl-dp": False, "fairfl-dp-seq": True, "fairfl-dp-median-clip": False,
        "fairfl-dp-seq-no-outliers": True}
    assert {n: r.max_norm_ratio for n, r in rules.items()} == {
        "fairfl-dp": 3.0, "fairfl-dp-seq": 3.0, "fairfl-dp-median-clip": 3.0,
        "fairfl-dp-seq-no-outliers": None}
    assert [r.clip_ratio for r in rules.values()] == [2.0, 2.0, 1.0, 2.0]
    assert all(r.noise_control and r.chance_z > 60 for r in rules.values())  # √4810 ≈ 69
    assert not strategy_for(fed, "fairfl").noise_control


def test_padding_lengthens_only_the_attackers_shorter_deltas_and_keeps_their_own_part():
    from benchmarks.privacy_dp import pad_updates

    rng = np.random.default_rng(0)
    params = rng.standard_normal(50)
    updates = [params + rng.standard_normal(50) * s for s in (0.1, 1.0, 5.0)]
    out = pad_updates(params, updates, [0, 2], 3.0, np.random.default_rng(1))
    padded, own = out[0].astype(np.float64) - params, updates[0] - params
    assert np.linalg.norm(padded) == pytest.approx(3.0, rel=1e-5)
    assert padded @ own / (own @ own) == pytest.approx(1.0, abs=1e-4)  # the pad is orthogonal
    np.testing.assert_array_equal(out[1], updates[1].astype(np.float32))  # not an attacker
    np.testing.assert_array_equal(out[2], updates[2].astype(np.float32))  # already longer
    assert "--attack" in run_fails("benchmarks.privacy_dp", "--pad")


def test_fitting_scales_the_attackers_deltas_to_the_length_both_ways_and_keeps_direction():
    from benchmarks.privacy_dp import fit_updates

    rng = np.random.default_rng(0)
    params = rng.standard_normal(50)
    updates = [params + rng.standard_normal(50) * s for s in (0.1, 1.0, 5.0)]
    out = fit_updates(params, updates, [0, 2], 3.0)
    for i in (0, 2):  # stretched, and shrunk
        fitted, own = out[i].astype(np.float64) - params, updates[i] - params
        assert np.linalg.norm(fitted) == pytest.approx(3.0, rel=1e-5)
        assert fitted @ own / (np.linalg.norm(fitted) * np.linalg.norm(own)) \
            == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(out[1], updates[1].astype(np.float32))  # not an attacker
    for bad in (["--attack", "sign_flip", "--pad", "--fit"], ["--fit"],
                ["--attack", "sign_flip", "--flip-scale", "3", "--fit"]):
        assert "without --pad or --flip-scale" in run_fails("benchmarks.privacy_dp", *bad)


def test_the_dp_federation_hands_its_flip_scale_to_the_sign_flippers():
    from benchmarks.privacy_dp import ALWAYS, Setting, honest_federation

    fed = honest_federation(1, Setting(clients=4, rounds=1), "sign_flip", 0.5, ALWAYS, 10.0)
    bad = [c for c in fed.clients if c.malicious]
    g = np.ones(3, np.float32)
    np.testing.assert_allclose(bad[0].poison(g, g + 0.5), g - 5.0)


def test_the_length_check_strategy_refuses_scaled_flips_before_the_rule_and_no_honest_update():
    """fairfl-dp-receipt: x10 flips at eps 2 are refused by the receipt's length check in
    every round (reason receipt, counted as attack), no honest update is; the default rule
    on the same run has no such count. Fitted flippers facing the check scale into their
    own band, so the check refuses none of them."""
    from benchmarks.privacy_dp import (
        DP_NO_OUTLIERS,
        DP_RECEIPT,
        Setting,
        calibrate,
        honest_federation,
        measure_run,
    )

    setting = Setting(clients=5, rounds=2, steps=5, accountant="rdp")  # rdp: calibrates fast
    calibration = calibrate([len(c.y) for c in honest_federation(1, setting).clients],
                            setting, 2.0)

    def run(strategy: str, **kwargs) -> dict:
        fed = honest_federation(1, setting, "sign_flip", 0.4, flip_scale=kwargs.pop("scale", 1.0))
        return measure_run(fed, strategy, "ε = 2", setting, calibration, **kwargs)

    checked = run(DP_RECEIPT, scale=10.0)
    assert checked["refused_by_length_check"] == {"honest": 0, "attack": 4}  # 2 x 2 rounds
    assert checked["rejections_by_reason"]["receipt"] == 4 and checked["tpr"] == 1.0
    assert "refused_by_length_check" not in run(DP_NO_OUTLIERS, scale=10.0)
    fitted = run(DP_RECEIPT, fit=True)
    assert fitted["refused_by_length_check"] == {"honest": 0, "attack": 0}


def test_a_fitting_attacker_facing_the_length_check_aims_inside_its_own_band():
    from benchmarks.privacy_dp import PAD_SHARE_OF_CLIP, in_band
    from fl_agent.privacy.dp_length import LengthBand

    band = LengthBand(low=4.0, high=10.0, noise=7.0, signal=1.0)
    assert in_band(6.0, None) == 6.0 and in_band(6.0, band) == 6.0
    assert in_band(20.0, band) == PAD_SHARE_OF_CLIP * 10.0       # the clip is beyond the band
    assert in_band(2.0, band) == 4.0 / PAD_SHARE_OF_CLIP         # below it: sent at its bottom
    assert band.holds(in_band(2.0, band)) and band.holds(in_band(20.0, band))


def test_padding_aims_just_under_the_clip_of_the_rule_it_faces():
    from dataclasses import replace

    from benchmarks.privacy_dp import pad_length
    from fl_agent.aggregation import FairFL, get_strategy

    honest = [1.0, 2.0, 4.0]  # median 2
    assert pad_length(FairFL(), honest) == pytest.approx(0.95 * 2 * 2)
    assert pad_length(replace(FairFL(), clip_ratio=1.0), honest) == pytest.approx(0.95 * 2)
    assert pad_length(get_strategy("fedavg"), honest) == pytest.approx(0.95 * 2 * 2)


def test_the_dp_lr_schedules_start_at_the_task_lr_and_end_where_named():
    from benchmarks.privacy_dp_explore import lr_factor

    assert lr_factor("const", 20)(7) == 1.0 and lr_factor("x1.5", 20)(20) == 1.5
    assert lr_factor("cosine", 20)(1) == 1.0 and 0 < lr_factor("cosine", 20)(20) < 0.01
    assert lr_factor("linear0.1", 20)(1) == 1.0
    assert lr_factor("linear0.1", 20)(20) == pytest.approx(0.1)
    assert [lr_factor("step0.3", 4)(r) for r in (1, 2, 3, 4)] == [1.0, 1.0, 0.3, 0.3]
    for bad in ("linear", "step-1", "xx", "warmup"):
        with pytest.raises(click.BadParameter):
            lr_factor(bad, 20)


def test_round_reasons_splits_each_rounds_rejections_by_kind_of_client():
    out = run("benchmarks.round_reasons", "--attack", "alie", "--alpha", "0.1",
              "--malicious", "0.45", "--seed", "12", "--rounds", "2")
    import ast

    *rounds, summary = [ast.literal_eval(line) for line in out.splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    # 9 of 20 clients collude and submit one crafted update: their unit seeds the merge
    assert all(r["honest"] == 11 and r["attackers"] == 9 for r in rounds)
    assert all(r["seed_unit"] == {"size": 9, "attackers": 9} for r in rounds)
    for r in rounds:  # one crafted update, one length; in these two rounds, inside the honest range
        low, high = r["norms"]["honest"]
        assert len(r["norms"]["attackers"]) == 9 and len(set(r["norms"]["attackers"].values())) == 1
        assert 0 < low <= next(iter(r["norms"]["attackers"].values())) <= high
    assert set(summary) == {"blacklisted_honest", "blacklisted_attackers", "final_accuracy"}


def test_the_exact_chance_experiment_runs_fairfl_both_ways(tmp_path):
    from benchmarks.chance_exact import exact_chance

    # the exact level is below the normal approximation, and below 0.5 at 62 dimensions
    assert 0.47 < exact_chance(62, 4.0) < 0.49 < 0.5 < 4 / 62 ** 0.5
    assert 0.0575 < exact_chance(4810, 4.0) < 4 / 4810 ** 0.5
    table = run("benchmarks.chance_exact", "--seeds", "1", "--cells", "gaussian:0.5:0.3",
                "--rounds", "2", "--json", str(tmp_path / "runs.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["way"] for r in rows] == ["normal", "exact"]
    assert "| gaussian | 0.5 | 0.3 | 1 | exact |" in table


def test_round_reasons_counts_attackers_that_poison_their_data_as_attackers():
    from benchmarks.round_reasons import explain

    first, _summary = explain("breast_cancer", "label_flip", 0.5, 0.3, seed=1, rounds=1)
    assert (first["honest"], first["attackers"]) == (14, 6)  # it once counted 20 honest


def test_gas_by_function_names_every_transaction_and_adds_up_to_the_run(tmp_path):
    from benchmarks.gas_by_function import differences

    out = tmp_path / "gas.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gas_by_function", "HEAD", "--clients", "3",
         "--rounds", "1", "--attack", "none", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={"PATH": f"{Path(sys.executable).parent}:{os.defpath}", "HOME": str(Path.home()),
             **APE_HOME})
    # The script itself stops if the transactions it reads back are not the run's (their
    # count and gas differ from the simulation's own report).
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (only,) = json.loads(out.read_text())["runs"]
    table = only["by_function"]
    # every call is named by its contract and function
    assert not [name for name in table if "0x" in name]
    assert table["TaskLedger.submitUpdate"]["calls"] == 3
    assert table["TaskLedger.startRound"]["calls"] == 1
    assert table["TaskLedger.finalizeRound"]["calls"] == 1
    assert table["deploy"]["calls"] >= 4

    before = {"by_function": {"a": {"calls": 2, "gas": 100}, "b": {"calls": 1, "gas": 7}}}
    after = {"by_function": {"a": {"calls": 2, "gas": 130}, "b": {"calls": 1, "gas": 7},
                             "c": {"calls": 1, "gas": 50}}}
    assert differences(before, after) == [
        {"function": "c", "calls": 1, "gas": 50, "per_call_before": None, "per_call_after": 50},
        {"function": "a", "calls": 0, "gas": 30, "per_call_before": 50, "per_call_after": 65}]


def test_the_noise_length_is_the_length_dp_sgd_adds_to_an_update():
    """With σ large enough to drown the signal, an update's length is its noise's: the
    diagnostic's expected noise length (the receipt's band's, as the benchmark wires it)
    must match what Opacus adds (within 5 %; the length of 4,810 Gaussian coordinates
    varies by about 1 %)."""
    from benchmarks.privacy_dp import Calibration, Setting, honest_federation, receipt_band
    from fl_agent.learning.models import init_params, param_count
    from fl_agent.privacy.dp import train_local_dp

    setting = Setting(clients=4, rounds=1)
    fed = honest_federation(1, setting)
    client = fed.clients[0]
    X, y = fed.data.standardize(client.X), np.asarray(client.y, dtype=np.int64)
    params = init_params(fed.spec, 1)
    trained = train_local_dp(fed.spec, params, X, y, setting.steps, seed=0,
                             batch_size=setting.batch_size, lr=setting.dp_lr, momentum=0.0,
                             noise_multiplier=50.0, max_grad_norm=setting.clip).vector
    length = float(np.linalg.norm(np.asarray(trained, np.float64) - params))
    rate = min(setting.batch_size, len(y)) / len(y)
    calibration = Calibration(8.0, (rate,), (50.0,), (8.0,), True, True)
    noise = receipt_band(setting, calibration, 0, len(y), param_count(fed.spec)).noise
    assert length / noise == pytest.approx(1.0, abs=0.05)


def test_the_sequential_test_turns_away_a_noise_like_sender_at_its_nominal_rate_but_bans_more():
    """A sender whose z-scores are N(0, 1) is turned away in Φ(−2) = 2.28 % of its
    submissions by the shipped test (its statistic is N(0, 1) every round), and banned far
    more often than three independent 2.3 % events within a window would be; a sender whose
    updates beat noise is banned less, one whose updates cost more is banned more."""
    from benchmarks.sequential_null import null_run

    rows = {drift: null_run(drift, rounds=20, senders=20_000, tolerance=2.0)
            for drift in (-0.2, 0.0, 0.5)}
    assert rows[0.0]["share_turned_away"] == pytest.approx(0.02275, abs=0.002)
    assert 0.03 < rows[0.0]["blacklisted"] < rows[0.0]["turned_away_at_least_once"] < 0.2
    assert rows[0.5]["blacklisted"] < rows[0.0]["blacklisted"] < rows[-0.2]["blacklisted"]


def test_the_registrys_ban_of_independent_rejections_matches_its_arithmetic(tmp_path):
    """Three rejections within the window, which holds five rounds of 20 clients: over three
    rounds a client is banned only if turned away in all three (p³), over four if in three of
    them (4p³(1 − p) + p⁴), over six it can also be banned after a window closes; never
    banned at p = 0, always within three rounds at p = 1, more often the longer the task."""
    from benchmarks.ban_null import ban_chance

    assert ban_chance(0.5, rounds=3, senders=40_000) == pytest.approx(0.125, abs=0.006)
    assert ban_chance(0.5, rounds=4, senders=40_000) == pytest.approx(5 / 16, abs=0.008)
    assert ban_chance(0.0, rounds=60, senders=1_000) == 0.0
    assert ban_chance(1.0, rounds=3, senders=1_000) == 1.0
    assert ban_chance(1.0, rounds=2, senders=1_000) == 0.0
    chances = [ban_chance(0.1, rounds=n, senders=20_000) for n in (20, 40, 60)]
    assert chances[0] < chances[1] < chances[2]
    out = tmp_path / "ban.json"
    table = run("benchmarks.ban_null", "--rates", "0.1", "--lengths", "5,10", "--senders",
                "500", "--json", str(out))
    assert "banned within 10 rounds" in table
    assert [r["rounds"] for r in json.loads(out.read_text())["rows"]] == [5, 10]
    assert "rates between 0 and 1" in run_fails("benchmarks.ban_null", "--rates", "1.5")


def test_hidden_sets_the_dp_benchmarks_mlp_width_and_nothing_else():
    """R56's narrower MLPs: the federation (shards, clients) is the simulation's; only the
    model's hidden widths change, and only an MLP has them."""
    from benchmarks.privacy_dp import Setting, honest_federation
    from fl_agent.learning.models import param_count

    wide = honest_federation(1, Setting(clients=4, rounds=1, steps=1))
    narrow = honest_federation(1, Setting(clients=4, rounds=1, steps=1, hidden=(16,)))
    assert (wide.spec.hidden, narrow.spec.hidden) == ((64,), (16,))
    assert param_count(narrow.spec) == 64 * 16 + 16 + 16 * 10 + 10
    assert narrow.spec.input_shape == wide.spec.input_shape
    assert [c.y.tolist() for c in narrow.clients] == [c.y.tolist() for c in wide.clients]
    assert "with --model mlp" in run_fails("benchmarks.privacy_dp", "--model", "logreg",
                                           "--hidden", "16")
    with pytest.raises(ValueError, match="an MLP's"):
        Setting(model="logreg", hidden=(16,))


def test_the_dp_benchmarks_tanh_mlp_trains_on_the_same_shards(tmp_path):
    """R59's tanh MLP: the simulation's federation with the model named ``mlp_tanh``, with
    and without ``--hidden``, and from the command line."""
    from benchmarks.privacy_dp import Setting, honest_federation

    relu = honest_federation(1, Setting(clients=4, rounds=1, steps=1))
    tanh = honest_federation(1, Setting(clients=4, rounds=1, steps=1, model="mlp_tanh"))
    narrow = honest_federation(1, Setting(clients=4, rounds=1, steps=1, model="mlp_tanh",
                                          hidden=(16,)))
    assert (tanh.spec.name, tanh.spec.hidden) == ("mlp_tanh", (64,))
    assert (narrow.spec.name, narrow.spec.hidden) == ("mlp_tanh", (16,))
    for fed in (tanh, narrow):
        assert [c.y.tolist() for c in fed.clients] == [c.y.tolist() for c in relu.clients]
    from benchmarks.privacy_dp import MLPS
    from fl_agent.learning.models import MLP_ARCHITECTURES

    assert MLPS == MLP_ARCHITECTURES  # kept apart only so that --help does not load torch
    out = tmp_path / "tanh.json"  # one round: its budget has no rounds before the last
    run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
        "--rounds", "1", "--steps", "2", "--strategies", "fedavg", "--skip-clip-only",
        "--accountant", "rdp", "--model", "mlp_tanh", "--hidden", "8", "--json", str(out),
        "--plot", str(tmp_path / "tanh.png"))
    made = json.loads(out.read_text())
    assert (made["settings"]["model"], made["settings"]["hidden"]) == ("mlp_tanh", [8])
    (calibration,) = made["calibrations"]
    assert calibration["last_round_fits"] and calibration["one_more_exceeds"]


def test_the_dp_benchmark_standardises_with_the_validation_splits_statistics(tmp_path):
    """R61's ``--statistics``: the mean and scale come from the validation split (per feature,
    or one of each pooled over all features), the shards and everything else staying the
    simulation's; attackers that train through the simulation's own standardisation are
    refused."""
    from benchmarks.privacy_dp import Setting, honest_federation
    from fl_agent.errors import ConfigError

    small = {"clients": 4, "rounds": 1, "steps": 1}
    train = honest_federation(1, Setting(**small))
    per_feature = honest_federation(1, Setting(**small, statistics="validation"))
    pooled = honest_federation(1, Setting(**small, statistics="validation-pooled"))
    validation = np.asarray(train.splits.validation.X, dtype=np.float64)
    assert np.allclose(per_feature.data.mean, validation.mean(axis=0))
    std = validation.std(axis=0)
    assert np.allclose(per_feature.data.scale, np.where(std == 0, 1.0, std))
    assert np.allclose(pooled.data.mean, validation.mean())
    assert np.allclose(pooled.data.scale, validation.std())
    assert len(pooled.data.scale) == validation.shape[1] == train.data.num_features
    z = pooled.data.standardize(validation)  # pooled: the split's values, mean 0 and sd 1
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    assert not np.allclose(train.data.mean, per_feature.data.mean)  # another sample
    for fed in (per_feature, pooled):
        assert [c.y.tolist() for c in fed.clients] == [c.y.tolist() for c in train.clients]
        assert fed.data.model_copy(update={"mean": None, "scale": None}) == \
            train.data.model_copy(update={"mean": None, "scale": None})
    with pytest.raises(ConfigError, match="--statistics train"):
        honest_federation(1, Setting(**small, statistics="validation"), "alie", 0.3)
    flipped = honest_federation(1, Setting(**small, statistics="validation"), "label_flip",
                                0.5)  # poisoned labels, standardised as everyone's
    assert flipped.data == per_feature.data
    with pytest.raises(ValueError, match="statistics must be one of"):
        Setting(statistics="test")
    out = tmp_path / "pooled.json"
    run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
        "--rounds", "1", "--steps", "2", "--strategies", "fedavg", "--skip-clip-only",
        "--accountant", "rdp", "--statistics", "validation-pooled", "--json", str(out),
        "--plot", str(tmp_path / "pooled.png"))
    assert json.loads(out.read_text())["settings"]["statistics"] == "validation-pooled"


def test_the_dp_benchmarks_warm_start_fits_the_split_it_trains_on():
    """R62's ``--warm-start``: the start fits the split it trains on far better than the
    seeded start, and 0 steps leave the seeded start as it is. Which rows a run hands it is
    :func:`test_a_dp_run_trains_its_start_and_gates_on_the_rows_its_setting_names`."""
    from benchmarks.privacy_dp import Setting, honest_federation, standardized, warm_started
    from fl_agent.learning.models import init_params
    from fl_agent.learning.training import evaluate, validation_scores

    def start(steps: int) -> tuple[np.ndarray, np.ndarray, object]:
        setting = Setting(clients=4, rounds=1, steps=1, warm_start=steps)
        fed = honest_federation(3, setting)
        X_val, y_val, *_ = standardized(fed)
        seeded = init_params(fed.spec, 3)
        return seeded, warm_started(fed.spec, seeded, X_val, y_val, setting, 3), fed

    seeded, unchanged, _ = start(0)
    assert unchanged is seeded
    _, four, fed = start(50)
    X_val, y_val, X_test, y_test, *_ = standardized(fed)

    def loss(vector: np.ndarray) -> float:
        return -float(np.mean(validation_scores(fed.spec, vector, X_val, y_val, "loss")))

    assert loss(four) < 0.5 * loss(seeded)
    assert evaluate(fed.spec, four, X_test, y_test, "accuracy") > 0.5  # ten classes
    with pytest.raises(ValueError, match="number of steps"):
        Setting(warm_start=-1)


def test_the_dp_benchmark_can_keep_the_warm_starts_data_away_from_the_gate(tmp_path):
    """R62b's ``--gate-data half``: the validation split in two seeded, stratified halves
    that share no example and together are the whole split; the start trains on one."""
    from benchmarks.privacy_dp import Setting, halves, honest_federation, standardized

    fed = honest_federation(2, Setting(clients=4, rounds=1, steps=1))
    X_val, y_val, *_ = standardized(fed)
    (X_start, y_start), (X_gate, y_gate) = halves(X_val, y_val, 2)
    assert abs(len(y_start) - len(y_gate)) <= 1 and len(y_start) + len(y_gate) == len(y_val)
    rows = {row.tobytes() for row in X_val}
    start_rows, gate_rows = ({r.tobytes() for r in X} for X in (X_start, X_gate))
    assert start_rows | gate_rows == rows and not start_rows & gate_rows
    assert np.all(np.abs(np.bincount(y_start, minlength=10)
                         - np.bincount(y_gate, minlength=10)) <= 1)  # stratified
    again = halves(X_val, y_val, 2)
    assert np.array_equal(again[0][0], X_start) and np.array_equal(again[1][0], X_gate)
    assert not np.array_equal(halves(X_val, y_val, 3)[0][0], X_start)
    with pytest.raises(ValueError, match="gate_data must be one of"):
        Setting(gate_data="test")
    with pytest.raises(ValueError, match="statistics 'train'"):  # R63 floors the simulation's
        Setting(scale_floor=0.25, statistics="validation")
    with pytest.raises(ValueError, match="scale_floor must be a share"):
        Setting(scale_floor=1.5)
    assert honest_federation(2, Setting(clients=4, scale_floor=0.25)).data.scale != \
        fed.data.scale
    out = tmp_path / "half.json"  # both options from the command line, in one run
    run("benchmarks.privacy_dp", "--seeds", "1", "--epsilons", "8", "--clients", "3",
        "--rounds", "1", "--steps", "2", "--strategies", "fedavg", "--skip-clip-only",
        "--accountant", "rdp", "--warm-start", "5", "--gate-data", "half", "--scale-floor",
        "0.25", "--json", str(out), "--plot", str(tmp_path / "half.png"))
    made = json.loads(out.read_text())
    assert (made["settings"]["warm_start"], made["settings"]["gate_data"]) == (5, "half")
    assert made["settings"]["scale_floor"] == 0.25  # R63's option, from the command line too
    assert {r["level"] for r in made["runs"]} == {"no DP", "ε = 8"}
    assert all(0 < r["start_accuracy"] <= 1 for r in made["runs"])


def test_the_start_trigger_trace_names_each_updates_pile(tmp_path):
    """``benchmarks.start_trigger_trace``: a row per client and start, the pile's feature
    with its scale and the client's own values on it, read back from the shards."""
    from benchmarks.privacy_dp import Setting, honest_federation, standardized

    out = tmp_path / "trace.json"
    run("benchmarks.start_trigger_trace", "--seeds", "1", "--starts", "0,5", "--clients",
        "3", "--json", str(out))
    made = json.loads(out.read_text())
    assert [(r["warm_start"], r["client"]) for r in made["rows"]] == \
        [(0, 0), (0, 1), (0, 2), (5, 0), (5, 1), (5, 2)]
    fed = honest_federation(1, Setting(clients=3))
    shards = standardized(fed)[4]
    for row in made["rows"]:
        X = shards[row["client"]][0][:, row["feature"]]
        assert row["examples"] == len(X)
        assert row["largest_value"] == pytest.approx(float(np.abs(X).max()))
        assert row["feature_scale"] == pytest.approx(fed.data.scale[row["feature"]])
        assert 0 <= row["excess"] <= 1
    assert "numbers of steps, 0 or more" in run_fails("benchmarks.start_trigger_trace",
                                                    "--starts", "-1")


@pytest.mark.parametrize("gate_data", ["all", "half"])
def test_a_dp_run_trains_its_start_and_gates_on_the_rows_its_setting_names(monkeypatch,
                                                                           gate_data):
    """R62 and R62b, read from inside a run: the start is trained on validation rows only
    (the whole split, or one half), and the gate reads the whole split, or only the other
    half, never a row the start saw; no participant's row reaches either."""
    import benchmarks.privacy_dp as privacy_dp
    import fl_agent.learning.training as training

    setting = privacy_dp.Setting(clients=3, rounds=1, steps=2, warm_start=3,
                                 gate_data=gate_data)
    fed = privacy_dp.honest_federation(1, setting)
    X_val, _, _, _, shards, _ = privacy_dp.standardized(fed)
    rows = {"start": set(), "gate": set()}
    real_start, real_gate = privacy_dp.warm_started, training.validation_scores

    def start(spec, params, X, y, setting_, seed):
        rows["start"] |= {row.tobytes() for row in np.asarray(X)}
        return real_start(spec, params, X, y, setting_, seed)

    def gate(spec, vector, X, y, metric):
        rows["gate"] |= {row.tobytes() for row in np.asarray(X)}
        return real_gate(spec, vector, X, y, metric)

    monkeypatch.setattr(privacy_dp, "warm_started", start)
    monkeypatch.setattr(training, "validation_scores", gate)
    privacy_dp.measure_run(fed, privacy_dp.DP_NO_OUTLIERS, privacy_dp.NO_DP, setting, None)
    validation = {row.tobytes() for row in X_val}
    private = {row.tobytes() for X, _ in shards for row in X}
    assert rows["start"] and rows["gate"]
    assert rows["start"] <= validation and rows["gate"] <= validation
    assert not (rows["start"] | rows["gate"]) & private
    if gate_data == "all":
        assert rows["start"] == rows["gate"] == validation
    else:
        assert not rows["start"] & rows["gate"]
        assert rows["start"] | rows["gate"] == validation
