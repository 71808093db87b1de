def test_deployment_wires_roles(token, registry, ledger, marketplace):
    assert token.hasRole(token.MINTER_ROLE(), ledger)
    assert registry.hasRole(registry.LEDGER_ROLE(), ledger)


def test_full_round(tasks, ledger, token, trainers):
    task_id = tasks.completed(trainers[:2])
    assert ledger.task(task_id).status == 2
    assert ledger.claimable(task_id, trainers[0]) == 500 * 10**18
    ledger.claimRewards(task_id, sender=trainers[0])
    assert token.balanceOf(trainers[0]) == 500 * 10**18
