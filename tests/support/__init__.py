"""Helpers the test modules share. Test modules import them from here, never from one another or
from conftest.py; the pytest fixtures built on them are registered in conftest.py."""
