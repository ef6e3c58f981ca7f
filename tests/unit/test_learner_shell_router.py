"""The learner's estimates as the router reads them: each outcome counted once."""
from events.learning import SkillEstimated
from services.router.state import RouterView
from tests import factories as f


def test_an_outcome_the_estimate_already_counts_is_not_counted_again():
    view = RouterView()
    for event in (*f.lifecycle("task-1", "agent-1")[:3],
                  SkillEstimated(agent_id="agent-1", capability="python", proficiency=0.7, confidence=0.3,
                                 successes=1, attempts=1)):
        view.apply(event.body if hasattr(event, "body") else event)
    view.apply(f.completed("task-1", "agent-1").body)  # read after the estimate that includes it

    record = view.state.records[("agent-1", "python")]
    assert (record.successes, record.failures, record.seen, record.estimate_attempts) == (0, 0, 1, 1)

    view.apply(f.submitted("task-2").body)
    view.apply(f.assigned("task-2", "agent-1").body)
    view.apply(f.completed("task-2", "agent-1").body)  # newer than the estimate
    assert view.state.records[("agent-1", "python")].successes == 1
