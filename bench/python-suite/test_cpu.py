import pytest


@pytest.mark.parametrize("i", range(24))
def test_cpu(work, i):
    pass
