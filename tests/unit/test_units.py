"""Durations and memory sizes as people write them in service settings."""

import pytest

from flowhost.services.units import parse_duration, parse_memory_mib


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1d", 86400.0),
        ("1.5m", 90.0),
        (" 45s ", 45.0),
        (90, 90.0),
        (0.25, 0.25),
        ("90", 90.0),
        ("2.5", 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


def test_parse_duration_returns_float() -> None:
    assert type(parse_duration(90)) is float
    assert type(parse_duration("10m")) is float


@pytest.mark.parametrize("value", ["ten minutes", "10 minutes", "10M", "m10", "", "1h-30m", "5x"])
def test_parse_duration_rejects_unreadable_text(value: str) -> None:
    with pytest.raises(ValueError, match="as a duration") as info:
        parse_duration(value)
    message = str(info.value)
    assert repr(value) in message  # the bad value
    assert "'500ms', '30s', '10m', '1h', '1h30m'" in message  # the accepted forms


@pytest.mark.parametrize("value", [-1, -0.5, "-5"])
def test_parse_duration_rejects_negative(value: str | float) -> None:
    with pytest.raises(ValueError, match=r"cannot be negative \(got "):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bool(value: bool) -> None:
    with pytest.raises(ValueError, match=rf"expected a duration, got {value}"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "mib"),
    [
        ("512Mi", 512),
        ("2Gi", 2048),
        ("1.5Gi", 1536),
        ("1Ti", 1024 * 1024),
        ("2048Ki", 2),
        ("1G", 954),  # 10**9 bytes
        ("1GB", 954),
        ("500M", 477),  # 5 * 10**8 bytes
        (" 256 Mi ", 256),
        (1024, 1024),  # a bare int is MiB
        (1, 1),
    ],
)
def test_parse_memory_mib(value: str | int, mib: int) -> None:
    assert parse_memory_mib(value) == mib


@pytest.mark.parametrize("value", ["2GB?", "lots", "2 Gib", "Gi", "-1Gi", "2gi", ""])
def test_parse_memory_rejects_unreadable_text(value: str) -> None:
    with pytest.raises(ValueError, match="as a memory size") as info:
        parse_memory_mib(value)
    message = str(info.value)
    assert repr(value) in message
    assert "'512Mi', '2Gi', or an int number of MiB" in message


@pytest.mark.parametrize("value", [0, -5, "1Ki", "0Gi"])
def test_parse_memory_rejects_less_than_one_mib(value: str | int) -> None:
    with pytest.raises(ValueError, match=rf"at least 1Mi \(got {value!r}\)"):
        parse_memory_mib(value)


def test_parse_memory_rejects_bool() -> None:
    with pytest.raises(ValueError, match="expected a memory size, got True"):
        parse_memory_mib(True)


def test_parse_memory_string_needs_a_unit() -> None:
    with pytest.raises(ValueError, match=r"cannot read '2048' as a memory size; use a quantity"):
        parse_memory_mib("2048")
