"""The public package surface stays small and importable."""

import streamchat


def test_all_names_are_exported():
    for name in streamchat.__all__:
        assert hasattr(streamchat, name), name
    assert streamchat.__version__.count(".") == 2
