"""Sizes are shown in binary units, the units every limit is set in."""

from core.data.decode import MAX_FILE_BYTES
from core.data.net import MAX_BYTES
from core.units import format_size


def test_limits_read_in_the_unit_they_are_set_in():
    assert format_size(MAX_FILE_BYTES) == "50 MiB"
    assert format_size(MAX_BYTES) == "2.0 GiB"
    assert format_size(1536 * 1024) == "1.5 MiB"
    assert format_size(2048) == "2 KiB"
    assert format_size(12) == "12 bytes"
