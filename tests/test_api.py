"""The public package surface stays small and importable."""

import streamchat


def test_all_names_are_exported():
    for name in streamchat.__all__:
        assert hasattr(streamchat, name), name
    assert streamchat.__version__.count(".") == 2


def test_redact_masks_keys_not_words():
    from streamchat.errors import redact

    assert redact("bad key sk-live-abcdef123 here") == "bad key *** here"
    assert redact("Authorization: Bearer abc.def") == "Authorization: ***"
    assert redact("task-force123456") == "task-force123456"
    assert redact("my secret is hunter22", ("hunter22",)) == "my secret is ***"
