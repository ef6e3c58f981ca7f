"""The learner against a simulated fleet whose true skills are known."""

from bench.evaluation.simulator.learning import TARGET_SHARE_OF_BAYES, run_learning, stepped


def test_after_warm_up_predictions_come_within_five_percent_of_the_bayes_optimal_accuracy():
    figures = run_learning(agents=8, tasks=2500, warm_up=700, seed=7, change_at=10_000)  # no change in this run

    assert figures.scored == 1800
    assert figures.bayes_accuracy > 0.6  # the fleet's skills are far enough from 0.5 to be worth predicting
    assert figures.share_of_bayes >= TARGET_SHARE_OF_BAYES


def test_a_skill_that_drops_mid_run_is_detected_within_a_hundred_of_the_agents_outcomes():
    figures = run_learning(agents=8, tasks=3000, warm_up=500, seed=11)

    change = figures.change
    assert change["after"] == stepped(change["before"])
    assert abs(change["after"] - change["before"]) > 0.3
    assert figures.detected_after_outcomes is not None and figures.detected_after_outcomes <= 100
    assert figures.detected_direction == ("degraded" if change["after"] < change["before"] else "improved")


def test_the_same_seed_gives_the_same_figures():
    assert run_learning(agents=6, tasks=800, warm_up=200, seed=3) == run_learning(
        agents=6, tasks=800, warm_up=200, seed=3
    )


def test_the_large_fleet_regime_is_reported_beside_the_running_mean_and_the_true_rates():
    from bench.evaluation.simulator.learning import fleet_table, run_large_fleet
    from bench.evaluation.simulator.regimes import LARGE_FLEET, simulated_log

    log = simulated_log(LARGE_FLEET, 7)
    sizes = sorted((sum(t.capability == c for t in log.tasks) for c in {t.capability for t in log.tasks}), reverse=True)
    assert len(log.tasks) == 500 and len(log.tasks[0].outcomes) == 24
    assert sizes[0] > 5 * sizes[-1]  # capabilities of very different sizes

    figures = run_large_fleet(seed=7)

    assert figures.outcomes == 500
    assert figures.log_loss < figures.running_mean_log_loss  # pooling pays where evidence is thin
    assert figures.bayes_log_loss < figures.log_loss  # and the truth is better still
    assert "running mean" in fleet_table(figures)
