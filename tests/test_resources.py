import pytest

from pytest_harnessbench.resources import Allocation, Multiplier, Spec, SpecError, parse_duration, parse_size

MI = 1024**2


@pytest.mark.parametrize("text, expected", [
    ("256Mi", 256 * MI), ("1Gi", 1024**3), ("512M", 512 * 1000**2), ("100K", 100_000),
    ("4Ki", 4096), ("2G", 2 * 1000**3), (" 64 mi ", 64 * MI), ("1.5Gi", int(1.5 * 1024**3)), (1234, 1234),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["2 gigs", "", "Mi", "-5Mi", "0", 0, True, "12Q"])
def test_bad_sizes_name_the_value(bad):
    with pytest.raises(SpecError, match="memory size"):
        parse_size(bad)


@pytest.mark.parametrize("text, seconds", [(120, 120.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0), (2.5, 2.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "10 minutes", 0, -1, "0s"])
def test_bad_durations(bad):
    with pytest.raises(SpecError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("text, factor, label", [
    ("1", 1.0, "1x"), ("3x", 3.0, "3x"), ("1.5", 1.5, "1.5x"), ("uncapped", None, "uncapped"), (" 3X ", 3.0, "3x"),
])
def test_multipliers(text, factor, label):
    m = Multiplier.parse(text)
    assert (m.factor, m.label) == (factor, label)


@pytest.mark.parametrize("bad", ["0.5", "abc", "3y", "", "-1", "x"])
def test_bad_multipliers(bad):
    with pytest.raises(SpecError, match="multiplier"):
        Multiplier.parse(bad)


def test_multipliers_order_uncapped_last():
    ms = [Multiplier.parse(t) for t in ("uncapped", "3", "1", "1.5")]
    assert [m.label for m in sorted(ms)] == ["1x", "1.5x", "3x", "uncapped"]


def test_spec_from_marker_defaults_and_values():
    spec = Spec.from_marker(cpus=2, memory="256Mi", timeout="10m", pids=64)
    assert spec == Spec(cpus=2.0, memory_bytes=256 * MI, timeout_s=600.0, pids=64)
    with pytest.raises(SpecError, match="cpus"):
        Spec.from_marker(cpus=0)


def test_allocation_guarantee_is_spec_and_limit_is_scaled():
    spec = Spec.from_marker(cpus=1, memory="256Mi", timeout=120, pids=100)
    at3 = Allocation.of(spec, Multiplier.parse("3"))
    assert (at3.guarantee.cpus, at3.guarantee.memory_bytes) == (1.0, 256 * MI)
    assert (at3.limit.cpus, at3.limit.memory_bytes) == (3.0, 768 * MI)
    assert at3.limit.pids == 100 and at3.timeout_s == 120  # not scaled by default


def test_allocation_at_1x_floor_and_ceiling_coincide():
    a = Allocation.of(Spec.from_marker(cpus=0.5, memory="100Mi"), Multiplier.parse("1"))
    assert a.guarantee.cpus == a.limit.cpus and a.guarantee.memory_bytes == a.limit.memory_bytes


def test_uncapped_has_no_limit_on_scaled_resources():
    a = Allocation.of(Spec.from_marker(memory="100Mi", timeout=30), Multiplier.parse("uncapped"))
    assert a.limit.cpus is None and a.limit.memory_bytes is None
    assert a.guarantee.memory_bytes == 100 * MI and a.timeout_s == 30


def test_verify_timeout_defaults_to_the_timeout_and_scales_with_time():
    assert Allocation.of(Spec.from_marker(timeout=30), Multiplier.parse("2")).verify_timeout_s == 30
    explicit = Allocation.of(Spec.from_marker(timeout=30, verify_timeout="2m"), Multiplier.parse("1"))
    assert explicit.verify_timeout_s == 120
    assert Allocation.of(Spec(timeout_s=None), Multiplier.parse("1")).verify_timeout_s == 600  # Harbor's default
    scaled = Allocation.of(Spec.from_marker(timeout=30, verify_timeout=10), Multiplier.parse("3"), frozenset({"time"}))
    assert (scaled.timeout_s, scaled.verify_timeout_s) == (90, 30)
    with pytest.raises(SpecError, match="duration"):
        Spec.from_marker(verify_timeout="soon")


def test_scale_time_and_pids():
    spec = Spec.from_marker(timeout=30, pids=10)
    a = Allocation.of(spec, Multiplier.parse("2"), frozenset({"time", "pids"}))
    assert a.timeout_s == 60 and a.limit.pids == 20 and a.limit.memory_bytes == spec.memory_bytes
