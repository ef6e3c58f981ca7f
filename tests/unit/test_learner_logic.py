import random

import pytest

from services.learner.cohort import AgentProfile
from services.learner.logic import LearnerState, Outcome, estimate, learn, predict, publish_model, register


def profile(agent_id, share=True, labels=None, **declared):
    return AgentProfile(
        agent_id=agent_id, declared=declared or {"python": 0.5}, labels=labels or {}, share_experience=share
    )


def given(*profiles, **settings) -> LearnerState:
    state = LearnerState(**settings)
    for p in profiles:
        register(state, p)
    return state


def when_outcomes(state, agent_id, pattern, capability="python", group=None, prompt_chars=None):
    """One outcome per character of `pattern`, '1' a success; returns what each taught."""
    return [
        learn(
            state,
            Outcome(
                task_id=f"{agent_id}-{capability}-{n}",
                agent_id=agent_id,
                capability=capability,
                success=c == "1",
                group_id=group(n) if callable(group) else group,
                task_features={"prompt_chars": prompt_chars(n)} if prompt_chars else {},
            ),
        )
        for n, c in enumerate(pattern)
    ]


def rate(successes_in_ten: int, tens: int) -> str:
    """A success pattern with the given rate, spread out rather than in runs."""
    return "".join("1" if (i * successes_in_ten) % 10 < successes_in_ten else "0" for i in range(10)) * tens


def random_pattern(p: float, n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join("1" if rng.random() < p else "0" for _ in range(n))


# --- the Beta posterior ---------------------------------------------------------------


def test_outcomes_update_the_posterior_from_the_declared_prior():
    state = given(profile("a", share=False, python=0.5), prior_strength=4.0)
    learned = when_outcomes(state, "a", "1111111100")
    skill = learned[-1].skill
    assert (skill.successes, skill.attempts) == (8, 10)
    assert skill.proficiency == pytest.approx((0.5 * 4 + 8) / (4 + 10))
    assert skill.agent_id == "a" and skill.capability == "python"


def test_confidence_starts_at_zero_and_grows_with_evidence():
    state = given(profile("a"))
    first = register(state, profile("a"))[0]
    confidences = [first.confidence]
    for tens in (1, 10, 100):
        confidences.append(when_outcomes(given(profile("a")), "a", rate(7, tens))[-1].skill.confidence)
    assert confidences[0] == 0.0
    assert confidences == sorted(confidences) and confidences[-1] > 0.9


def test_the_prediction_made_before_an_outcome_does_not_know_it():
    state = given(profile("a", share=False))
    before = predict(state, "a", "python")
    learned = when_outcomes(state, "a", "1")[0]
    assert learned.prediction == before
    assert predict(state, "a", "python").proficiency > before.proficiency


# --- cross-agent learning and cold start -------------------------------------------------


def test_a_newcomer_starts_from_what_similar_sharing_agents_achieved():
    state = given(profile("veteran"))
    when_outcomes(state, "veteran", rate(9, 10))
    first = register(state, profile("newcomer"))[0]
    assert first.attempts == 0 and first.proficiency > 0.8  # not the declared 0.5


def test_agents_that_forbid_sharing_contribute_nothing_to_others():
    private, without = given(profile("sharer"), profile("private", share=False)), given(profile("sharer"))
    for state in (private, without):
        when_outcomes(state, "sharer", rate(8, 5))
    when_outcomes(private, "private", rate(1, 20))
    newcomer = profile("newcomer")
    assert register(private, newcomer) == register(without, newcomer)
    assert private.model.trained_on == 50  # the private agent's outcomes never trained the shared model
    assert publish_model(private).parameters == publish_model(without).parameters


def test_an_agent_that_forbids_sharing_still_receives_a_prior_from_others():
    state = given(profile("sharer"))
    when_outcomes(state, "sharer", rate(9, 10))
    assert register(state, profile("private", share=False))[0].proficiency > 0.8


def test_similar_profiles_weigh_more_in_the_prior():
    state = given(profile("coder", labels={"family": "code"}), profile("writer", labels={"family": "prose"}))
    when_outcomes(state, "coder", rate(9, 10))
    when_outcomes(state, "writer", rate(2, 10))
    like_coder = register(state, profile("new-coder", labels={"family": "code"}))[0].proficiency
    like_writer = register(state, profile("new-writer", labels={"family": "prose"}))[0].proficiency
    # Agents this far apart say less against a newcomer's declaration (0.5) than alike ones would,
    # but each newcomer leans towards the agent it resembles.
    assert like_coder > 0.5 > like_writer
    assert like_coder - like_writer > 0.05


def test_the_agents_own_evidence_takes_over_from_the_prior():
    state = given(profile("veteran"), profile("newcomer"))
    when_outcomes(state, "veteran", rate(9, 20))
    assert estimate(state, "newcomer", "python").proficiency > 0.85
    when_outcomes(state, "newcomer", rate(3, 20))
    assert estimate(state, "newcomer", "python").proficiency < 0.35


# --- skill trajectory ---------------------------------------------------------------------

CHANGE_DETECTED_WITHIN = 64  # outcomes after an abrupt change from 85% to 25% success


@pytest.mark.parametrize("before, after, direction", [(0.85, 0.25, "degraded"), (0.25, 0.85, "improved")])
def test_an_abrupt_change_is_detected_soon_with_the_estimate_before_and_after(before, after, direction):
    state = given(profile("a", share=False))
    when_outcomes(state, "a", random_pattern(before, 300, seed=1))
    learned = when_outcomes(state, "a", random_pattern(after, 200, seed=2))
    shifts = [(n, s) for n, step in enumerate(learned) for s in step.shifts]
    assert shifts, "no change detected"
    n, shift = shifts[0]
    assert n < CHANGE_DETECTED_WITHIN
    assert shift.direction == direction
    assert shift.before == pytest.approx(before, abs=0.1) and shift.after == pytest.approx(after, abs=0.1)
    # the record now describes the agent after the change, not its whole history
    assert learned[n].skill.attempts < 300 + n + 1


def test_the_outcomes_an_estimate_has_read_keep_counting_when_its_record_restarts_after_a_change():
    state = given(profile("a", share=False))
    when_outcomes(state, "a", random_pattern(0.85, 300, seed=1))
    learned = when_outcomes(state, "a", random_pattern(0.25, 200, seed=2))
    assert any(step.shifts for step in learned)
    final = learned[-1].skill
    assert final.attempts < 500 and final.outcomes_read == 500  # so a reader can tell what it has not counted


def test_a_steady_agent_raises_no_alarm():
    state = given(profile("a", share=False))
    assert not any(step.shifts for step in when_outcomes(state, "a", random_pattern(0.6, 3000, seed=3)))


def test_the_short_term_trend_follows_the_latest_outcomes():
    from services.learner.logic import trend

    state = given(profile("a", share=False))
    when_outcomes(state, "a", rate(5, 10) + "1" * 15)
    assert trend(state, "a", "python") > 0.1


# --- relationships ----------------------------------------------------------------------


def test_a_pair_that_does_better_together_gets_a_lift_above_one():
    state = given(profile("x", share=False), profile("y", share=False))
    when_outcomes(state, "x", rate(5, 4), group=lambda n: f"solo-x-{n}")
    when_outcomes(state, "y", rate(5, 4), group=lambda n: f"solo-y-{n}")
    events = []
    for job in range(20):
        for agent in ("x", "y"):
            events += learn(
                state,
                Outcome(
                    task_id=f"{job}-{agent}", agent_id=agent, capability="python", success=True, group_id=f"job-{job}"
                ),
            ).relationships
    x_with_y = [e for e in events if (e.agent_id, e.other_agent_id) == ("x", "y")]
    y_with_x = [e for e in events if (e.agent_id, e.other_agent_id) == ("y", "x")]
    assert len(x_with_y) == len(y_with_x) == 20
    last = x_with_y[-1]
    assert last.joint_tasks == 20 and last.joint_success_rate == 1.0
    assert last.lift > 1.4
    assert x_with_y[0].confidence < last.confidence


def test_a_pair_that_does_worse_together_gets_a_lift_below_one():
    state = given(profile("x", share=False), profile("y", share=False))
    when_outcomes(state, "x", rate(8, 4))
    when_outcomes(state, "y", rate(8, 4))
    events = []
    for job in range(20):
        for agent in ("x", "y"):
            events += learn(
                state,
                Outcome(
                    task_id=f"{job}-{agent}", agent_id=agent, capability="python", success=False, group_id=f"job-{job}"
                ),
            ).relationships
    assert events[-1].lift < 0.2


# --- determinism --------------------------------------------------------------------------


def test_the_same_outcomes_in_the_same_order_give_the_same_model_and_estimates():
    def replay():
        state = given(
            profile("a", python=0.5, sql=0.6),
            profile("b", python=0.7, sql=0.4),
            profile("c", share=False, python=0.5, sql=0.5),
        )
        rng = random.Random(5)
        learned = []
        for n in range(400):
            agent, capability = rng.choice("abc"), rng.choice(("python", "sql"))
            learned.append(
                learn(
                    state,
                    Outcome(
                        task_id=f"t{n}",
                        agent_id=agent,
                        capability=capability,
                        success=rng.random() < 0.6,
                        group_id=f"job-{n // 3}",
                        task_features={"prompt_chars": rng.randint(50, 5000)},
                    ),
                )
            )
        return learned, publish_model(state)

    (first, model), (second, again) = replay(), replay()
    assert first == second
    assert model == again


def test_the_profile_comes_from_the_registration_and_sharing_is_opt_in():
    from events.agents import AgentRegistered
    from events.values import Capability, MemoryProfile

    registered = AgentRegistered(
        agent_id="a",
        display_name="A",
        capacity=1,
        labels={"family": "code"},
        capabilities=(Capability(name="python", proficiency=0.8),),
        memory_profile=MemoryProfile(store_kind="vector", share_experience=True),
    )
    shares = AgentProfile.from_registration(registered)
    assert shares.share_experience and shares.declared == {"python": 0.8} and shares.labels == {"family": "code"}
    silent = AgentProfile.from_registration(registered.model_copy(update={"memory_profile": None}))
    assert not silent.share_experience
