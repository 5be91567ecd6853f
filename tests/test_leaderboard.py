"""The leaderboard's arithmetic and a vote's invariants: pure, in-process."""

from __future__ import annotations

import pytest

from streamchat.leaderboard import Standing, Vote, leaderboard


def test_a_win_is_one_win_for_the_winner_and_one_loss_for_each_other_model():
    board = leaderboard([Vote(("a", "b", "c"), "win", "b")])
    assert {s.model: (s.wins, s.losses, s.ties) for s in board} == {"a": (0, 1, 0), "b": (1, 0, 0), "c": (0, 1, 0)}
    assert board[0].model == "b" and board[0].win_rate == 1.0


def test_tie_and_both_bad_are_ties_for_every_model_and_both_bad_is_counted_too():
    board = {s.model: s for s in leaderboard([Vote(("a", "b"), "tie"), Vote(("a", "b"), "bad")])}
    assert (board["a"].ties, board["a"].both_bad, board["a"].wins, board["a"].losses) == (2, 1, 0, 0)
    assert board["a"].votes == 2 and board["a"].win_rate == 0.0


def test_win_rate_is_wins_over_the_votes_a_model_took_part_in():
    votes = [Vote(("a", "b"), "win", "a"), Vote(("a", "b"), "win", "b"), Vote(("a", "b"), "tie"),
             Vote(("a", "c"), "win", "a")]
    board = {s.model: s for s in leaderboard(votes)}
    assert board["a"].as_dict() == {"model": "a", "wins": 2, "losses": 1, "ties": 1, "both_bad": 0, "votes": 4,
                                    "win_rate": 0.5}
    assert board["b"].win_rate == pytest.approx(1 / 3)
    assert (board["c"].wins, board["c"].losses, board["c"].win_rate) == (0, 1, 0.0)


def test_order_is_win_rate_then_wins_then_fewer_losses_then_votes_then_name():
    votes = [Vote(("x", "y"), "win", "x"),  # x 1/1
             Vote(("m", "y"), "win", "m"), Vote(("m", "y"), "win", "m"),  # m 2/2: same rate, more wins
             Vote(("b", "z"), "tie"), Vote(("a", "z"), "tie")]  # a, b, z at 0 without losses; z in more votes; y lost 3
    assert [s.model for s in leaderboard(votes)] == ["m", "x", "z", "a", "b", "y"]


def test_no_votes_is_an_empty_board_and_a_standing_without_votes_has_rate_zero():
    assert leaderboard([]) == []
    assert Standing("a").win_rate == 0.0


@pytest.mark.parametrize("models, outcome, winner, why", [
    (("a",), "tie", None, "2 or 3 models"),
    (("a", "b", "c", "d"), "tie", None, "2 or 3 models"),
    (("a", "a"), "tie", None, "named twice"),
    (("a", "b"), "draw", None, "outcome must be"),
    (("a", "b"), "win", None, "winner goes with"),
    (("a", "b"), "tie", "a", "winner goes with"),
    (("a", "b"), "win", "c", "one of the models"),
])
def test_a_vote_that_cannot_be_counted_is_refused(models, outcome, winner, why):
    with pytest.raises(ValueError, match=why):
        Vote(models, outcome, winner)
