"""How the PostgreSQL view groups row operations into few statements without changing their effect."""

from projections.ops import Delete, Insert, Upsert
from projections.postgres_view import compile_batch


def upsert(task_id, status):
    return Upsert("tasks", {"task_id": task_id}, {"status": status})


def test_operations_of_one_shape_on_different_rows_share_one_statement_with_one_parameter():
    statements = compile_batch([upsert("t1", "routed"), upsert("t2", "routed"), upsert("t3", "routed")])

    assert len(statements) == 1
    statement, params = statements[0]
    assert "jsonb_populate_recordset" in statement and "ON CONFLICT" in statement
    assert [row["task_id"] for row in params[0].obj] == ["t1", "t2", "t3"]


def test_a_row_touched_again_waits_for_a_later_statement_so_the_order_is_kept():
    statements = compile_batch(
        [upsert("t1", "routed"), upsert("t2", "routed"), upsert("t1", "assigned"), upsert("t1", "started")]
    )

    rows = [[(row["task_id"], row["status"]) for row in params[0].obj] for _, params in statements]
    assert rows == [[("t1", "routed"), ("t2", "routed")], [("t1", "assigned")], [("t1", "started")]]


def test_a_delete_is_a_barrier_on_its_table_only():
    caps = lambda name: Upsert("agent_capabilities", {"agent_id": "a", "name": name}, {"proficiency": 0.5})  # noqa: E731
    history = Insert("agent_capability_history", {"event_id": "e1", "agent_id": "a"})

    statements = compile_batch([caps("python"), history, Delete("agent_capabilities", {"agent_id": "a"}), caps("sql")])

    kinds = [statement.split()[0] + " " + statement.split()[2] for statement, _ in statements]
    assert kinds == [
        'INSERT "agent_capabilities"',
        'INSERT "agent_capability_history"',
        'DELETE "agent_capabilities"',
        'INSERT "agent_capabilities"',
    ]
