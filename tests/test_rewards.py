"""GRPO-CARE's accuracy and format rewards (and the optional length bonus) on a table of completions."""

import pytest

from medbridge.train.rewards import (
    accuracy_reward,
    answer_span,
    completion_text,
    format_reward,
    make_length_reward,
)

# completion, answer letter, accuracy, format
TABLE = [
    ("<think>it is a liver</think><answer>A</answer>", "A", 1.0, 1.0),
    ("<think>x</think>\n <answer> a. </answer>", "A", 1.0, 1.0),  # lowercased, trailing '.' stripped, spaces ok
    ("<think>x</think><answer>B</answer>", "A", 0.0, 1.0),
    # the last answer counts; fullmatch lets the lazy <answer>.*?</answer> stretch over both tags, as the authors' regex
    ("<think>x</think><answer>B</answer><answer>A</answer>", "A", 1.0, 1.0),
    ("<think>x</think><answer>A</answer> and more", "A", 1.0, 0.0),  # fullmatch: nothing may follow
    ("<answer>A</answer>", "A", 1.0, 0.0),  # no <think> block
    ("A", "A", 1.0, 0.0),  # no tags: the whole completion is compared
    ("A.", "A", 1.0, 0.0),
    ("The answer is A", "A", 0.0, 0.0),  # exact match only, no letter hunting
    ("<think>x</think><answer>AB</answer>", "A", 0.0, 1.0),
    ("<think>x</think><answer>A", "A", 0.0, 0.0),  # unclosed: the whole text is compared
    ("<think>x</think><answer>A\n</answer>", "A", 1.0, 1.0),  # newline inside the tag
    ("<think>\nmulti\nline\n</think>\n<answer>C</answer>", "C", 1.0, 1.0),  # DOTALL
    ("", "A", 0.0, 0.0),
]


@pytest.mark.parametrize("text,answer,acc,fmt", TABLE)
def test_rewards_on_plain_completions(text, answer, acc, fmt):
    assert accuracy_reward([text], [answer]) == [acc]
    assert format_reward([text]) == [fmt]


def test_rewards_read_conversational_completions_like_trl_passes_them():
    completions = [[{"role": "assistant", "content": t}] for t, *_ in TABLE]
    answers = [a for _, a, *_ in TABLE]
    assert accuracy_reward(completions, answers) == [acc for *_, acc, _ in TABLE]
    assert format_reward(completions) == [fmt for *_, fmt in TABLE]
    parts = [{"type": "text", "text": "<answer>"}, {"type": "text", "text": "B</answer>"}]
    blocks = [{"role": "assistant", "content": parts}]
    assert completion_text(blocks) == "<answer>B</answer>"


def test_answer_span_is_what_the_accuracy_reward_reads():
    text = "<answer>B</answer> then <answer> C </answer>"
    s, e = answer_span(text)
    assert text[s:e] == " C "
    assert answer_span("no tags") == (0, 7)


def test_length_bonus_needs_an_accurate_group_mate_and_the_length_window():
    bonus = make_length_reward(num_generations=4)
    ok, bad = "<answer>A</answer>", "<answer>B</answer>"
    lengths = [400, 100, 400, 400, 400, 400, 400, 400]
    comps = [ok, ok, bad, ok, ok, bad, bad, bad]  # group 1: three accurate; group 2: one accurate (no bonus)
    out = bonus(comps, ["A"] * 8, [[0] * n for n in lengths])
    assert out == [0.2, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0]
    assert bonus.__name__ == "length_bonus"
