"""make test's scheduling (tests/conftest.py): only the tests that read the fresh toy run share its worker."""

from conftest import toy_run_readers


def test_only_readers_of_the_toy_run_join_its_group():
    source = '''
import pytest

@pytest.fixture
def derived(toy_outputs):
    return toy_outputs

@pytest.fixture
def deeper(derived, tmp_path):
    return derived

def test_direct(toy_outputs, name):
    pass

def test_through_fixtures(deeper):
    pass

def test_alone(tmp_path):
    pass

def helper(x):
    return x
'''
    assert toy_run_readers(source) == {"derived", "deeper", "test_direct", "test_through_fixtures"}
    assert toy_run_readers("def test_a(tmp_path):\n    pass\n") == set()
