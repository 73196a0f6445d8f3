from __future__ import annotations

import re

import pytest

from parcelguard.lab import seed


def test_check_digit_matches_the_published_gb11643_example() -> None:
    # The worked example of GB 11643-1999: 11010519491231002X.
    assert seed.id_check_digit("11010519491231002") == "X"
    assert seed.is_valid_resident_id("11010519491231002X")
    assert not seed.is_valid_resident_id("110105194912310021")


@pytest.mark.parametrize("bad", ["", "1234", "1101051949123100XX", "11010519491231002"])
def test_malformed_ids_are_invalid(bad: str) -> None:
    assert not seed.is_valid_resident_id(bad)


def test_generated_records_look_like_real_delivery_user_data() -> None:
    records = list(seed.waybills(200))
    assert len({w.waybill_no for w in records}) == 200
    for w in records:
        for party in (w.sender, w.recipient):
            assert seed.is_valid_resident_id(party.id_number)
            assert re.fullmatch(r"1[3-9]\d{9}", party.phone)
            assert party.address.endswith("室")
            assert 2 <= len(party.name) <= 3


def test_generation_is_reproducible_and_seed_dependent() -> None:
    assert list(seed.waybills(5)) == list(seed.waybills(5))
    assert list(seed.waybills(5, seed=1)) != list(seed.waybills(5, seed=2))


def test_sql_loads_every_record_with_copy() -> None:
    sql = seed.waybill_sql(7)
    body = sql.split("COPY waybill FROM stdin;\n", 1)[1].split("\\.\n", 1)[0]
    rows = body.splitlines()
    assert len(rows) == 7
    assert all(len(r.split("\t")) == 12 for r in rows)
    assert sql.rstrip().endswith("COMMIT;")


def test_copy_fields_escape_tabs_and_newlines() -> None:
    assert seed._copy_field("a\tb\nc\\d") == "a\\tb\\nc\\\\d"


def test_csv_export_has_a_header_and_count_rows() -> None:
    lines = seed.waybill_csv(3).splitlines()
    assert lines[0].startswith("waybill_no,recipient_name")
    assert len(lines) == 4
