"""The learner's estimates as the router reads them: each outcome counted once."""

from events.learning import SkillEstimated
from services.router.logic import RouterState, learn_outcome, take_estimate
from services.router.state import RouterFold
from tests import factories as f


def test_an_outcome_the_estimate_already_counts_is_not_counted_again():
    view = RouterFold()
    for event in (
        *f.lifecycle("task-1", "agent-1")[:3],
        SkillEstimated(
            agent_id="agent-1", capability="python", proficiency=0.7, confidence=0.3, successes=1, attempts=1
        ),
    ):
        view.apply(event.body if hasattr(event, "body") else event)
    view.apply(f.completed("task-1", "agent-1").body)  # read after the estimate that includes it

    record = view.state.records[("agent-1", "python")]
    assert (record.successes, record.failures, record.seen, record.estimate_attempts) == (0, 0, 1, 1)

    view.apply(f.submitted("task-2").body)
    view.apply(f.assigned("task-2", "agent-1").body)
    view.apply(f.completed("task-2", "agent-1").body)  # newer than the estimate
    assert view.state.records[("agent-1", "python")].successes == 1


# --- a learner behind or ahead of the router ---------------------------------------------------


def estimate_having_read(n: int, proficiency: float = 0.6) -> SkillEstimated:
    return SkillEstimated(
        agent_id="a1",
        capability="python",
        proficiency=proficiency,
        confidence=0.5,
        successes=0,
        attempts=n,
        outcomes_read=n,
    )


def tally(state: RouterState) -> tuple[float, float]:
    record = state.records[("a1", "python")]
    return record.successes, record.failures


def test_an_estimate_behind_the_router_leaves_the_outcomes_it_has_not_read_in_the_tally():
    # given the router read five outcomes: success, failure, success, success, failure
    state = RouterState()
    for success in (True, False, True, True, False):
        learn_outcome(state, "a1", "python", success)
    # when an estimate made from the first three arrives
    take_estimate(state, estimate_having_read(3))
    # then the last two still count, on top of it
    assert tally(state) == (1, 1) and state.records[("a1", "python")].estimate == 0.6
    # and an estimate that has read them all takes them over
    take_estimate(state, estimate_having_read(5))
    assert tally(state) == (0, 0)


def test_outcomes_an_estimate_ahead_of_the_router_has_read_are_not_counted_again():
    state = RouterState()
    learn_outcome(state, "a1", "python", True)
    take_estimate(state, estimate_having_read(3))  # the learner read two outcomes the router has not yet
    learn_outcome(state, "a1", "python", True)
    learn_outcome(state, "a1", "python", False)
    assert tally(state) == (0, 0)
    learn_outcome(state, "a1", "python", False)  # the first one past the estimate
    assert tally(state) == (0, 1)


def test_an_estimate_older_than_the_one_in_hand_changes_nothing():
    state = RouterState()
    for success in (True, True, False, True):
        learn_outcome(state, "a1", "python", success)
    take_estimate(state, estimate_having_read(3, proficiency=0.7))
    take_estimate(state, estimate_having_read(1, proficiency=0.2))  # a slower learner copy, late
    record = state.records[("a1", "python")]
    assert (record.estimate, record.estimate_read, tally(state)) == (0.7, 3, (1, 0))


def test_an_estimate_that_does_not_say_what_it_read_is_taken_to_count_everything():
    state = RouterState()
    for success in (True, False, True):
        learn_outcome(state, "a1", "python", success)
    take_estimate(
        state,
        SkillEstimated(agent_id="a1", capability="python", proficiency=0.6, confidence=0.5, successes=1, attempts=2),
    )
    assert tally(state) == (0, 0)
    learn_outcome(state, "a1", "python", True)  # seen 4 > attempts 2: new
    assert tally(state) == (1, 0)
