"""QA pass 2: `--help` is where a new user starts — it shows what to type, not only what exists."""

from __future__ import annotations

import shlex


def test_help_ends_with_examples_that_fit_80_columns_and_parse(invoke):
    """QB-5: `streamchat --help` listed 40 options and 11 commands but not one example."""
    from streamchat.cli._app import EXAMPLES

    out = invoke("--help").out
    assert "\nExamples:\n" in out
    shown = out.split("\nExamples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(shown) == len(EXAMPLES) >= 5
    assert all(len(line) <= 80 for line in shown), shown
    for line in EXAMPLES:  # each one reads as shell words, starting with streamchat or a pipe into it
        words = shlex.split(line.split("   ")[0].replace("·", ";"))
        assert "streamchat" in words, line
