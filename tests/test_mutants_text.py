"""Answer extraction and the GRPO rewards at their edges (issue #25): tag flags, the last of several tags, the length
bonus's inclusive range, a conversation's last turn."""

from __future__ import annotations

import pytest

from medbridge.score.extract import answer_span, extract_choice
from medbridge.train.rewards import accuracy_reward, make_length_reward


def test_tags_match_any_case_and_span_lines():
    assert extract_choice("<Answer>B</ANSWER>", "ABC") == ("B", "tag")
    assert answer_span("<answer>it is\nB</answer>") == ("it is\nB", "tag")


def test_the_last_of_three_closed_tags():
    text = "<answer>A</answer> <answer>B</answer> <answer>C</answer>"
    assert answer_span(text, "last") == ("C", "tag") and answer_span(text, "first") == ("A", "tag")
    assert extract_choice(text, "ABC", "last") == ("C", "tag")


@pytest.mark.parametrize("length,bonus", [(319, 0.0), (320, 0.2), (512, 0.2), (513, 0.0)])
def test_length_bonus_range_is_inclusive(length, bonus):
    reward = make_length_reward(num_generations=2)
    got = reward(completions=["<answer>A</answer>"] * 2, answer=["A", "A"], completion_ids=[[0] * length, [0] * 400])
    assert got == [bonus, 0.2]


def test_a_conversation_is_read_from_its_last_turn():
    chat = [{"role": "user", "content": "B"}, {"role": "assistant", "content": "<answer>A</answer>"}]
    assert accuracy_reward([chat], ["A"]) == [1.0]
    assert accuracy_reward([chat], ["B"]) == [0.0]


def test_completions_and_answers_must_pair_up():
    with pytest.raises(ValueError):
        accuracy_reward(["<answer>A</answer>"] * 2, ["A"])
