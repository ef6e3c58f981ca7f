import orjson
import pytest

from events.catalog import EVENT_TYPES
from events.codec import decode
from events.examples import example_event
from events.schema_export import DEFAULT_DIR, main, schema_file, stale_files, write


def load(name: str) -> dict:
    return orjson.loads((DEFAULT_DIR / name).read_bytes())


def test_schemas_are_up_to_date():
    assert stale_files(DEFAULT_DIR) == [], "schemas/ is stale: run python -m events.schema_export"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_schema_pins_its_type_and_version_and_its_example_decodes(event_type):
    schema = load(schema_file(event_type))
    (example,) = schema["examples"]

    assert schema["properties"]["event_type"]["const"] == event_type
    assert schema["properties"]["version"]["const"] == EVENT_TYPES[event_type].version
    assert decode(example) == example_event(event_type)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_example_satisfies_its_json_schema_and_extras_do_not(event_type):
    import jsonschema

    schema = load(schema_file(event_type))
    (example,) = schema["examples"]

    jsonschema.Draft202012Validator(schema).validate(example)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "body": {**example["body"], "unexpected": 1}}, schema)


def test_the_index_lists_every_event_type():
    index = load("index.json")

    assert {e["event_type"]: e["version"] for e in index["events"]} == {
        name: cls.version for name, cls in EVENT_TYPES.items()
    }


def test_check_reports_a_changed_and_a_leftover_file(tmp_path, capsys):
    write(tmp_path)
    assert main(["--check", "--out", str(tmp_path)]) == 0

    (tmp_path / "TaskStarted.schema.json").write_text("{}\n")
    (tmp_path / "TaskTeleported.schema.json").write_text("{}\n")

    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "TaskStarted.schema.json" in capsys.readouterr().err
    assert stale_files(tmp_path) == ["TaskStarted.schema.json", "TaskTeleported.schema.json"]
