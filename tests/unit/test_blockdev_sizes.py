import pytest

from dib.blockdev import sizes
from dib.config.build import BuildConfig
from dib.errors import BlockDeviceError
from dib.pipeline.artifacts import requested_sizes


@pytest.mark.parametrize("spec,expected", [
    ("1GiB", 1024 ** 3), ("500MB", 500 * 1000 ** 2), ("8MiB", 8 * 1024 ** 2),
    ("4096", 4096), (4096, 4096), ("1.5 GiB", int(1.5 * 1024 ** 3)), ("2G", 2 * 1000 ** 3),
    ("10KiB", 10240), ("7B", 7), ("1TiB", 1024 ** 4),
])
def test_absolute(spec, expected):
    assert sizes.parse_size(spec) == expected


def test_percent_of_available():
    assert sizes.parse_size("50%", available=1000) == 500
    assert sizes.parse_size("100%", available=123) == 123


@pytest.mark.parametrize("bad", ["1 GiBB", "abc", "-5", "12XB", "", "0%", "150%", True])
def test_bad_values_name_the_value(bad):
    with pytest.raises(BlockDeviceError) as exc:
        sizes.parse_size(bad, available=100)
    assert repr(bad) in str(exc.value)


def test_percent_needs_available():
    with pytest.raises(BlockDeviceError, match="relative"):
        sizes.parse_size("10%")


def test_image_size_helpers():
    assert sizes.parse_image_size_gb(2) == 2 * 1024 ** 3
    assert sizes.parse_image_size_gb("0.5") == 512 * 1024 ** 2
    assert sizes.parse_image_size_gb(1.00001) % (64 * 1024) == 0
    assert sizes.parse_extra_size_mb("100") == 100 * 1024 ** 2
    with pytest.raises(BlockDeviceError, match="'x'"):
        sizes.parse_image_size_gb("x")
    with pytest.raises(BlockDeviceError):
        sizes.parse_image_size_gb(0)


def test_align():
    assert sizes.align_up(1, 512) == 512
    assert sizes.align_up(1024, 512) == 1024
    assert sizes.align_down(1023, 512) == 512


def test_the_build_reads_image_size_as_dib_does():
    assert requested_sizes(BuildConfig(image_size=2)) == (2 * 1024 ** 3, None)
    assert requested_sizes(BuildConfig(image_size=0.5, image_extra_size=100)) == \
        (512 * 1024 ** 2, 100 * 1024 ** 2)
    size, _ = requested_sizes(BuildConfig(image_size=1.00001))
    assert size % (64 * 1024) == 0 and size > 1024 ** 3
    assert requested_sizes(BuildConfig()) == (None, None)
