"""The audit chain and its verifier, without a database: each kind of tampering, at the exact row."""

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import checkpoints
from services.audit.chain import (
    GENESIS,
    Entry,
    Head,
    canonical_bytes,
    check_chain,
    decode_headers,
    encode_headers,
    extend,
    link,
)
from services.audit.checkpoints import Checkpoint
from services.audit.verify import judge

KEY = Ed25519PrivateKey.generate()


def entries(n: int, topic: str = "p.tasks") -> list[Entry]:
    return [
        Entry(
            topic,
            i % 3,
            i // 3,
            1_700_000_000_000 + i,
            f"task-{i}".encode(),
            f'{{"n": {i}}}'.encode(),
            (("dlq.attempt", b"1"),) if i % 4 == 0 else (),
        )
        for i in range(n)
    ]


def given_chain(n: int = 10):
    rows, head = extend(Head(), entries(n))
    return rows, head


def signed_at(rows, seq: int, key=KEY) -> tuple[str, Checkpoint]:
    row = rows[seq - 1]
    checkpoint = checkpoints.sign(
        Checkpoint(
            chain="audit",
            last_seq=seq,
            last_hash=row.hash.hex(),
            count=seq,
            time="2026-01-01T00:00:00.000Z",
            last_position=row.entry.position,
        ),
        key,
    )
    return checkpoints.file_name(checkpoint), checkpoint


def verdict_of(rows, found=()):
    found = list(found)
    chain = check_chain(rows, watch={c.last_seq for _, c in found if c})
    return judge("audit", chain, found, KEY.public_key())


def rechained(rows, from_index: int = 0):
    """What an attacker with write access does after editing: recompute every hash from there on."""
    head = Head(rows[from_index - 1].seq, rows[from_index - 1].hash) if from_index else Head()
    redone, _ = extend(head, [r.entry for r in rows[from_index:]])
    return rows[:from_index] + redone


# --- negative cases first ------------------------------------------------------------------


def test_a_tampered_value_is_found_at_its_row():
    rows, _ = given_chain()
    rows[4] = replace(rows[4], entry=replace(rows[4].entry, value=b'{"n": 999}'))

    verdict = verdict_of(rows)

    assert not verdict.ok
    assert (verdict.first.seq, verdict.first.kind, verdict.first.position) == (5, "altered", rows[4].entry.position)
    assert verdict.rows == 4
    assert f"TAMPERED: first bad position: altered at seq 5 ({rows[4].entry.position})" in verdict.as_text()


def test_a_deleted_row_is_found_where_it_is_missing():
    rows, _ = given_chain()
    del rows[6]  # seq 7

    verdict = verdict_of(rows)

    assert (verdict.first.seq, verdict.first.kind, verdict.first.position) == (7, "missing", None)
    assert f"found seq 8 ({rows[6].entry.position}) next" in verdict.first.detail


def test_a_deleted_row_with_the_rest_renumbered_is_found_at_the_gap():
    rows, _ = given_chain()
    del rows[6]
    rows = [replace(r, seq=i + 1) for i, r in enumerate(rows)]

    verdict = verdict_of(rows)

    assert (verdict.first.seq, verdict.first.kind) == (7, "broken_link")


def test_two_swapped_rows_are_found_at_the_first_of_them():
    rows, _ = given_chain()
    rows[2], rows[3] = replace(rows[3], seq=3), replace(rows[2], seq=4)

    verdict = verdict_of(rows)

    assert (verdict.first.seq, verdict.first.kind) == (3, "broken_link")


def test_two_swapped_contents_are_found_at_the_first_of_them():
    rows, _ = given_chain()
    rows[2], rows[3] = replace(rows[2], entry=rows[3].entry), replace(rows[3], entry=rows[2].entry)

    verdict = verdict_of(rows)

    assert (verdict.first.seq, verdict.first.kind) == (3, "altered")


def inserted_after(rows, index: int, forged: Entry, *, linked: bool):
    prev = rows[index]
    digest = link(prev.hash, prev.seq + 1, forged) if linked else bytes(32)
    inserted = replace(prev, seq=prev.seq + 1, entry=forged, prev_hash=prev.hash, hash=digest)
    return rows[: index + 1] + [inserted] + [replace(r, seq=r.seq + 1) for r in rows[index + 1 :]]


FORGED = Entry("p.tasks", 0, 99, 0, b"task-x", b'{"forged": true}')


def test_an_inserted_row_is_found_at_its_place():
    rows, _ = given_chain()

    verdict = verdict_of(inserted_after(rows, 4, FORGED, linked=False))

    assert (verdict.first.seq, verdict.first.kind, verdict.first.position) == (6, "altered", FORGED.position)


def test_an_inserted_row_linked_to_its_predecessor_breaks_the_link_of_the_next_one():
    rows, _ = given_chain()

    verdict = verdict_of(inserted_after(rows, 4, FORGED, linked=True))

    # Alone, a well-linked insertion looks like any row; the row displaced by it cannot link to it.
    assert (verdict.first.seq, verdict.first.kind, verdict.first.position) == (7, "broken_link", rows[5].entry.position)


def test_a_truncated_tail_is_found_against_the_newest_checkpoint():
    rows, _ = given_chain()
    found = [signed_at(rows, 5), signed_at(rows, 9)]

    verdict = verdict_of(rows[:7], found)

    assert (verdict.first.seq, verdict.first.kind) == (8, "truncated")
    assert rows[8].entry.position in verdict.first.detail


def test_a_chain_rewritten_with_fresh_hashes_is_found_at_the_checkpoint_it_contradicts():
    rows, _ = given_chain()
    found = [signed_at(rows, 6)]
    rows[2] = replace(rows[2], entry=replace(rows[2].entry, value=b"{}"))

    verdict = verdict_of(rechained(rows, 2), found)

    assert (verdict.first.seq, verdict.first.kind) == (6, "checkpoint_mismatch")


def test_a_forged_checkpoint_is_reported_and_not_trusted():
    rows, _ = given_chain()
    name, genuine = signed_at(rows, 9)
    altered = replace(genuine, last_seq=10, count=10, last_hash=rows[9].hash.hex())
    _, other_key = signed_at(rows, 9, key=Ed25519PrivateKey.generate())

    verdict = verdict_of(rows[:9], [(name, altered), ("other.json", other_key), ("broken.json", None)])

    assert [p.kind for p in verdict.problems] == ["checkpoint_forged"] * 3
    assert {p.seq for p in verdict.problems} == {0, 9, 10}
    assert not verdict.ok


# --- the intact chain ------------------------------------------------------------------------


def test_an_intact_chain_with_its_checkpoints_verifies():
    rows, head = given_chain()

    verdict = verdict_of(rows, [signed_at(rows, 5), signed_at(rows, 10)])

    assert verdict.ok and verdict.problems == []
    assert (verdict.rows, verdict.head_seq, verdict.head_hash) == (10, 10, head.hash.hex())
    assert verdict.as_json()["first_bad"] is None


def test_without_checkpoints_the_verdict_says_a_cut_tail_cannot_be_seen():
    rows, _ = given_chain(3)

    verdict = verdict_of(rows)

    assert verdict.ok and "cannot be detected" in verdict.notes[0]


def test_extending_in_two_batches_gives_the_same_chain_as_in_one():
    all_entries = entries(8)
    whole, head = extend(Head(), all_entries)
    first, middle = extend(Head(), all_entries[:3])
    rest, end = extend(middle, all_entries[3:])

    assert first + rest == whole and end == head
    assert whole[0].prev_hash == GENESIS


def test_canonical_bytes_keep_field_boundaries():
    a = Entry("t", 0, 1, 0, b"ab", b"c")
    b = Entry("t", 0, 1, 0, b"a", b"bc")
    none_key = Entry("t", 0, 1, 0, None, b"c")
    empty_key = Entry("t", 0, 1, 0, b"", b"c")

    assert canonical_bytes(1, a) != canonical_bytes(1, b)
    assert canonical_bytes(1, none_key) != canonical_bytes(1, empty_key)
    assert canonical_bytes(1, a) != canonical_bytes(2, a)


@pytest.mark.parametrize("headers", [(), (("a", b"1"),), (("dlq.error.message", b""), ("x", None))])
def test_headers_round_trip_as_stored(headers):
    assert decode_headers(encode_headers(headers)) == headers
