"""The scorekeeping of `orchestrator evaluate`, without the system around it."""

from bench.evaluation.online import ColdStart, LoggedTask, Replay, best_single_agent, load
from bench.evaluation.outcome_log import LoggedTask, load
from events.learning import SkillEstimated


def logged(n: int, capability: str = "math", **outcomes: bool) -> LoggedTask:
    return LoggedTask(f"t{n}", capability, {"prompt_chars": 100.0}, outcomes)


def given_a_replay(tasks: list[LoggedTask]) -> Replay:
    return Replay(settings=None, tasks=tasks, outstanding=10)


def when_routed(replay: Replay, task_id: str, agent: str, predicted: float) -> None:
    replay.predicted[task_id] = (agent, predicted)
    replay.outcome[task_id] = (agent, replay.tasks[task_id].outcomes[agent])


def test_the_newcomers_first_tasks_after_it_joined_are_scored_with_its_predictions():
    tasks = [logged(n, old=n % 2 == 0, new=True) for n in range(10)]
    replay = given_a_replay(tasks)
    for n in range(10):
        agent = "new" if n >= 4 and n % 2 == 0 else "old"
        when_routed(replay, f"t{n}", agent, 0.9 if agent == "new" else 0.4)

    figures = replay.newcomer(ColdStart("new", after=4, first=2))

    assert figures["newcomer_tasks"] == 2 and figures["newcomer_success_rate"] == 1.0
    assert figures["newcomer_prediction_accuracy"] == 1.0
    assert figures["newcomer_share_after_joining"] == 0.5  # t4, t6, t8 of t4..t9
    assert figures["fleet_success_after_joining"] == 0.5  # the newcomer's three, none of old's odd ones
    assert figures["routing_success_rate"] == 0.5


def test_a_newcomer_never_chosen_has_no_success_rate_rather_than_zero():
    tasks = [logged(n, old=True, new=True) for n in range(4)]
    replay = given_a_replay(tasks)
    for n in range(4):
        when_routed(replay, f"t{n}", "old", 0.7)

    figures = replay.newcomer(ColdStart("new", after=1))

    assert figures["newcomer_tasks"] == 0 and figures["newcomer_success_rate"] is None


def test_the_best_single_agent_is_the_one_with_most_successes_overall():
    tasks = [logged(0, a=True, b=False), logged(1, a=False, b=True), logged(2, a=False, b=True)]
    assert best_single_agent(tasks) == "b"


def test_limit_zero_reads_the_whole_log(tmp_path):
    path = tmp_path / "log.csv"
    lines = ["seq,task_seq,task_id,capability,split,prompt_chars,agent_id,score,outcome"]
    lines += [f"{n},{n},t{n},math,test,10,org/a,1,1" for n in range(5)]
    path.write_text("\n".join(lines) + "\n")

    assert len(load(str(path), 0)) == 5 and len(load(str(path), 3)) == 3
    assert load(str(path), 1)[0].outcomes == {"org/a": True}


def test_the_running_mean_baseline_predicts_each_pair_from_its_outcomes_before():
    tasks = [logged(n, a=n != 1) for n in range(3)]
    replay = given_a_replay(tasks)
    for n in range(3):
        when_routed(replay, f"t{n}", "a", 0.5)

    baseline = replay.running_mean()

    # 1/2 (a success: a tie at 0.5 is no prediction of success), 2/3 (a failure), 2/4 (a success)
    assert baseline["prediction_accuracy"] == 0.0
    assert baseline["log_loss"] > 0.69


def skill(agent: str, read: int) -> SkillEstimated:
    return SkillEstimated(
        agent_id=agent,
        capability="math",
        proficiency=0.5,
        confidence=0.1,
        successes=0,
        attempts=read,
        outcomes_read=read,
    )


def test_how_far_the_learner_lags_is_the_answered_outcomes_its_estimates_do_not_count():
    replay = given_a_replay([logged(n, a=True, b=False) for n in range(10)])
    for n in range(10):
        when_routed(replay, f"t{n}", "a" if n < 6 else "b", 0.5)
    replay.estimated(skill("a", 5))
    replay.estimated(skill("b", 2))
    assert replay.learner_behind() == 3  # one of a's six and two of b's four
    replay.estimated(skill("a", 4))  # an older estimate, read late, takes nothing back
    replay.estimated(skill("a", 6))
    replay.estimated(skill("b", 4))
    assert replay.learner_behind() == 0 and replay.learner_most_behind == 3
