"""The Python API refuses arguments of the wrong kind with streamchat's UsageError, at `prompt()`.

`system=5` was a bare TypeError from the turn's thread when the response was read, and
`attachments="shot.png"` (one path, not a list) was iterated character by character: "/ is a
directory — attach image or PDF files".
"""

from __future__ import annotations

import pytest
from test_python_api import api as api  # the fixture: keys, base URLs and the log in tmp

import streamchat


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"system": 5}, "system must be a string or None, not int"),
    ({"attachments": "/tmp/shot.png"}, "attachments is a list of paths, not one path"),
])
def test_a_wrong_kind_of_argument_is_a_usage_error_at_prompt(api, kwargs, says):
    api.script("fast", chunks=["ok"])
    with pytest.raises(streamchat.UsageError, match=says):
        streamchat.get_model("openai:fast").prompt("q", **kwargs)
    assert api.requests == []


def test_an_unknown_options_hint_lists_no_other_providers_options(api):
    with pytest.raises(streamchat.UsageError) as caught:
        streamchat.get_model("openai:fast").prompt("q", options={"bogus": 1})
    said = str(caught.value)
    assert "bogus" in said and "mirostat" not in said and "streamchat models --options" in said
