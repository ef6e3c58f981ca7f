"""Reading outcome logs as users keep them: names as written, task features optional, clear refusals."""

import gzip

import pytest

from bench.evaluation.outcome_log import DEFAULT_CAPABILITY, LogFormatError, load


def a_log(tmp_path, *lines: str, name: str = "log.csv") -> str:
    path = tmp_path / name
    text = "\n".join(lines) + "\n"
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as stream:
            stream.write(text)
    else:
        path.write_text(text)
    return str(path)


def test_names_with_slashes_dots_and_at_signs_are_kept_as_written(tmp_path):
    path = a_log(
        tmp_path,
        "task_id,capability,agent_id,outcome",
        "t1,octo/repo.py,org/model-7b@v1.2,1",
        "t1,octo/repo.py,other.agent@eu,0",
    )

    [task] = load(path)

    assert task.capability == "octo/repo.py"
    assert task.outcomes == {"org/model-7b@v1.2": True, "other.agent@eu": False}
    assert task.submitted().requirements[0].name == "octo/repo.py"


def test_a_log_without_prompt_chars_task_seq_or_capability_is_read_in_the_order_tasks_appear(tmp_path):
    path = a_log(tmp_path, "task_id,agent_id,outcome", "b,x,1", "b,y,0", "a,x,0", "a,y,true", name="log.csv.gz")

    tasks = load(path)

    assert [t.task_id for t in tasks] == ["b", "a"]
    assert all(t.features == {} and t.capability == DEFAULT_CAPABILITY for t in tasks)
    assert tasks[1].outcomes == {"x": False, "y": True}


def test_task_seq_orders_tasks_and_only_columns_constant_within_a_task_are_features(tmp_path):
    path = a_log(
        tmp_path,
        "task_seq,task_id,capability,agent_id,outcome,score,files,split,cost",
        "1,late,math,x,1,0.9,3,test,0.5",
        "1,late,math,y,0,0.1,3,test,",
        "0,early,math,x,0,0.0,,test,0.25",
        "0,early,math,y,0,0.0,,test,0.75",
    )

    early, late = load(path)

    assert (early.task_id, late.task_id) == ("early", "late")
    # score differs between the agents of one task: it describes an attempt, and would give the outcome away
    assert late.features == {"files": 3.0} and early.features == {}
    assert late.costs == {"x": 0.5} and early.costs == {"x": 0.25, "y": 0.75}


def test_a_log_missing_a_needed_column_is_refused_with_what_a_log_needs(tmp_path):
    path = a_log(tmp_path, "task,model,result", "t1,a,1")

    with pytest.raises(LogFormatError) as caught:
        load(path)

    message = str(caught.value)
    assert "no column task_id, agent_id, outcome" in message
    for column in ("capability", "task_seq", "cost", "prompt_chars"):
        assert column in message


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("t1,math,,1", "agent_id '' is not a name"),
        ("t1,math,bad\x01agent,1", "is not a name"),
        ("t1,math," + "a" * 201 + ",1", "is not a name (1 to 200 characters"),
        ("t1,math,a,maybe", "outcome 'maybe' is neither 1 nor 0"),
    ],
)
def test_bad_rows_are_refused_naming_the_line(tmp_path, row, complaint):
    path = a_log(tmp_path, "task_id,capability,agent_id,outcome", "t0,math,a,1", row)

    with pytest.raises(LogFormatError) as caught:
        load(path)

    assert "line 3" in str(caught.value) and complaint in str(caught.value)


def test_an_empty_log_is_refused(tmp_path):
    with pytest.raises(LogFormatError, match="no rows"):
        load(a_log(tmp_path, "task_id,agent_id,outcome"))
