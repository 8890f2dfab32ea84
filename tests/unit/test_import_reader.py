"""CSV reading without Redis: framing, line numbers, byte errors, sniffing, columns, phones."""

from __future__ import annotations

import io

import pytest

from dialer.domain.phones import check_region, invalid_reason, normalize_phone, to_e164
from dialer.errors import ValidationError
from dialer.importer import ColumnMapping, ImportRefused, LineError
from dialer.importer.mapping import MappingProblem
from dialer.importer.reader import (
    MAX_LINE,
    MAX_RECORD,
    CsvSource,
    Item,
    LineReader,
    records,
    sniff_delimiter,
)
from tests.unit.import_helpers import unseekable


def read_all(data: bytes, delimiter: str = ",") -> list[Item]:
    return list(records(LineReader(io.BytesIO(data)), delimiter))


def errors_of(items: list[Item]) -> list[tuple[int, str]]:
    return [(i.line, i.reason) for i in items if isinstance(i, LineError)]


def test_multiline_records_keep_their_start_line() -> None:
    data = (
        b"h1,h2\n"
        b'a,"x\r\ny"\n'  # lines 2-3
        b'b,"p\nq\nr"\n'  # lines 4-6
        b"\n"  # 7: blank, skipped
        b"c,d\n"  # 8
        b'"e ""quoted"", with comma",f'  # 9, no final newline
    )
    assert read_all(data) == [
        (1, ["h1", "h2"]),
        (2, ["a", "x\r\ny"]),
        (4, ["b", "p\nq\nr"]),
        (8, ["c", "d"]),
        (9, ['e "quoted", with comma', "f"]),
    ]


def test_rows_of_empty_cells_are_blank() -> None:
    assert read_all(b"a,b\n,\n , \nc,d\n") == [(1, ["a", "b"]), (4, ["c", "d"])]


def test_byte_errors_name_the_bad_line_and_reading_goes_on() -> None:
    data = b'a,b\n1,\xff\n2,x\x00\n3,"multi\nline \xe9\nend"\n4,ok\n'
    items = read_all(data)
    assert errors_of(items) == [
        (2, "not UTF-8 text"),
        (3, "NUL byte in the line"),
        (5, "not UTF-8 text"),  # inside a quoted field: the bad line, not the record's start
    ]
    assert items[-1] == (7, ["4", "ok"])


def test_over_long_line_is_an_error_and_the_next_lines_are_read() -> None:
    long_line = b"1," + b"x" * (MAX_LINE + 10) + b"\n"
    exact = b"2," + b"y" * (MAX_LINE - 3) + b"\n"  # MAX_LINE bytes with its LF: accepted
    items = read_all(b"a,b\n" + long_line + exact + b"3,z\n")
    assert errors_of(items) == [(2, f"line longer than {MAX_LINE} bytes")]
    assert [i[0] for i in items if not isinstance(i, LineError)] == [1, 3, 4]


def test_a_record_over_the_limit_is_an_error_not_a_memory_hog() -> None:
    field = '"' + "x" * 60 + "\n" + "y" * 60 + '"'
    record = ",".join([field] * (MAX_RECORD // 120 + 10))
    data = ("a,b\n" + record + "\n").encode()
    reader = LineReader(io.BytesIO(data))
    items = list(records(reader, ","))
    assert errors_of(items)[0] == (2, f"record longer than {MAX_RECORD} bytes")


def test_quoting_errors() -> None:
    assert errors_of(read_all(b'a,b\n"x"y,1\n2,3\n'))[0][0] == 2
    items = read_all(b'a,b\n1,2\n3,"open\n4,5\n')
    assert errors_of(items) == [(3, "unterminated quoted field")]


def test_lone_cr_is_not_a_line_end() -> None:
    items = read_all(b"a,b\r1,2\r3,4\r")
    assert errors_of(items)[0][0] == 1


@pytest.mark.parametrize(
    ("head", "delimiter"),
    [
        (b"phone,name\n+1,a\n+2,b\n", ","),
        (b"phone;name;city\n+1;Doe, J;X\n+2;Roe;Y\n", ";"),
        (b"phone\tname\n+1\ta b\n+2\tc\n", "\t"),
        (b'phone,name\n+1,"a;b;c"\n+2,"d;e;f"\n', ","),
        (b"phone\n+1\n+2\n", ","),  # one column: nothing to guess
        (b"", ","),
        (b"phone;name\n+1;a\n+2;b\n+3;partial line cut by the sample, x, y, z", ";"),
    ],
)
def test_sniff_delimiter(head: bytes, delimiter: str) -> None:
    assert sniff_delimiter(head) == delimiter


def test_source_spools_an_unseekable_stream_and_reads_it_twice() -> None:
    source = CsvSource(unseekable(b"\xef\xbb\xbfphone;name\n+1;a\n"))
    source.open()
    try:
        assert source.delimiter == ";"
        first = list(source.lines())
        assert first == list(source.lines()) == ["phone;name\n", "+1;a\n"]
    finally:
        source.close()


def test_source_refuses_utf16() -> None:
    source = CsvSource(io.BytesIO("phone\n+1\n".encode("utf-16")))
    with pytest.raises(ImportRefused, match="UTF-16"):
        source.open()


def test_source_reads_a_stream_from_its_position() -> None:
    f = io.BytesIO(b"junk to skip\nphone\n+1\n")
    f.readline()
    source = CsvSource(f)
    source.open()
    assert list(source.lines()) == ["phone\n", "+1\n"]
    assert list(source.lines()) == ["phone\n", "+1\n"]


# ---- columns


def test_default_mapping() -> None:
    cols = ColumnMapping().resolve([" Account Number ", "Phone", "Full Name", "TZ", "ref"])
    assert cols.phone == 1  # an exact match wins over a header merely containing "number"
    assert cols.headers == ("Account Number", "Phone", "Full Name", "TZ", "ref")
    fields = ["A-1", "+1", "Ann Lee", "Europe/Paris", "r\r\n1"]
    assert cols.vars_of(fields) == {
        "Account Number": "A-1",
        "name": "Ann Lee",
        "timezone": "Europe/Paris",
        "ref": "r\r\n1",
    }
    assert cols.phone_of(["x", " +1 212 ", "", "", ""]) == "+1 212"
    assert ColumnMapping().resolve(["id", "Mobile phone"]).phone == 1
    assert ColumnMapping().resolve(["MSISDN"]).phone == 0


def test_explicit_mapping_is_case_insensitive() -> None:
    cols = ColumnMapping(phone="cell", name="who", timezone="zone").resolve(
        ["Who", "Cell", "Zone", "phone"]
    )
    assert cols.phone == 1
    assert cols.vars_of(["W", "+1", "Z", "P"]) == {"name": "W", "timezone": "Z", "phone": "P"}


@pytest.mark.parametrize(
    ("mapping", "headers", "message"),
    [
        (ColumnMapping(), ["name", "email"], "no phone column.*headers found: 'name', 'email'"),
        (ColumnMapping(phone="cell"), ["phone", "x"], "phone column 'cell' not found.*'phone'"),
        (ColumnMapping(name="who"), ["phone"], "name column 'who' not found"),
        (ColumnMapping(), ["phone", " ", "x"], "header of column 2 is empty"),
        (
            ColumnMapping(),
            ["phone", "City", "city "],
            r"duplicate header 'city' \(columns 2 and 3\)",
        ),
        (ColumnMapping(), ["phone", "Full name", "name"], "variable 'name' would come from two"),
        (ColumnMapping(name="phone"), ["phone"], "both the phone and another"),
    ],
)
def test_mapping_problems(mapping: ColumnMapping, headers: list[str], message: str) -> None:
    with pytest.raises(MappingProblem, match=message):
        mapping.resolve(headers)


def test_record_problems() -> None:
    cols = ColumnMapping().resolve(["phone", "name"])
    assert cols.problem(["+1", "a"]) is None
    assert cols.problem(["+1"]) == "1 field, expected 2"
    assert cols.problem(["+1", "a", "b"]) == "3 fields, expected 2"
    assert cols.problem([" ", "a"]) == "empty phone ('phone' column)"


# ---- phones


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(212) 555-0123", "US", "+12125550123"),
        ("+1 212 555 0123", "FR", "+12125550123"),
        ("1-212-555-0123", "US", "+12125550123"),
        ("011 33 6 12 34 56 78", "US", "+33612345678"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("0033 6 12 34 56 78", "FR", "+33612345678"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("06 12 34 56 78", "US", None),
        ("12", "US", None),
        ("abc", "US", None),
        ("+999 123456", "US", None),
        ("", "US", None),
        ("+1 212 555 0123 ext. 4", "US", "+12125550123"),
    ],
)
def test_to_e164(raw: str, region: str, e164: str | None) -> None:
    assert to_e164(raw, region) == e164


def test_invalid_reasons_and_normalize() -> None:
    assert invalid_reason("12", "US") == "too short"
    assert invalid_reason("abc", "US") == "not a phone number"
    assert invalid_reason("+999 123456", "US") == "unknown country code"
    assert invalid_reason("+12125550123", "US") == ""
    assert normalize_phone(" (212) 555-0123 ", "US") == "+12125550123"
    with pytest.raises(ValidationError, match="invalid phone number '12': too short"):
        normalize_phone("12", "US")


def test_check_region() -> None:
    assert check_region("fr") == "FR"
    with pytest.raises(ValidationError, match="'XX' is not a known"):
        check_region("XX")
