import pytest

from medbridge.score.extract import extract_choice, well_formatted

from .conftest import filled

LETTERS = "ABCD"


@pytest.mark.parametrize(
    "text,choice,method",
    [
        ("<think>looks like a liver</think><answer>B</answer>", "B", "tag"),
        ("<think>x</think><answer> c </answer>", "C", "tag"),  # lowercase inside the tag
        ("<answer>A</answer> wait, no <answer>D</answer>", "A", "tag"),  # two answers: the first wins (authors)
        ("<think>hmm</think><answer>B. heart\nmore text", "B", "unclosed"),
        ("<answer>\n\n  C\n", "C", "unclosed"),
        ("Answer: D because ...", "D", "answer_is"),
        ("The answer is D because ...", "D", "letter"),  # "answer is" is not the pattern; D is the first letter
        ("final: b", "B", "answer_is"),
        ("I would pick A here.", None, "none"),  # the first standalone capital is "I": no option (authors' order)
        ("<answer>Z</answer>", None, "none"),  # letter out of range, nothing else usable
        ("<answer>E</answer> so A", None, "none"),  # out-of-range tag; the first standalone letter is E again
        ("", None, "none"),
        ("\ufffd\x00junk<<<>>>", None, "none"),
        ("no letters at all", None, "none"),
    ],
)
def test_extraction_table(text, choice, method):
    assert extract_choice(text, LETTERS) == (choice, method)


def test_format_check():
    assert well_formatted("<think>a\nb</think>\n<answer>A</answer>")
    assert not well_formatted("<answer>A</answer>")
    assert not well_formatted("<think>a</think><answer>A</answer> trailing")


def test_answer_tag_first_or_last():
    text = "<think>B?</think><answer>B</answer> on reflection <answer>D</answer>"
    assert extract_choice(text, LETTERS) == ("B", "tag")  # the authors' parse_mcq_letter: re.search, the first
    assert extract_choice(text, LETTERS, "first") == ("B", "tag")
    assert extract_choice(text, LETTERS, "last") == ("D", "tag")  # what the GRPO accuracy reward reads
    # a first tag without a usable letter falls through to the later rules, not to the second tag
    assert extract_choice("<answer>none</answer> <answer>C</answer> answer: A", LETTERS) == ("A", "answer_is")
    assert extract_choice("<answer>none</answer> <answer>C</answer> answer: A", LETTERS, "last") == ("C", "tag")
    with pytest.raises(ValueError, match="answer_tag"):
        extract_choice(text, LETTERS, "middle")


def test_generation_rows_follow_the_configured_tag():
    from medbridge.generate import Completion, SamplingSettings
    from medbridge.generate.run import record

    item = {"id": "q", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer": "D", "question": "?"}
    text = "<answer>B</answer><answer>D</answer>"
    settings = SamplingSettings.from_config(filled({"evaluate": {"n_samples": 1, "max_new_tokens": 8}}))
    first = record(item, Completion(text, [text]), settings)
    last = record(item, Completion(text, [text]), settings, "last")
    assert (first["greedy"]["choice"], first["greedy"]["correct"], first["answer_tag"]) == ("B", False, "first")
    assert (last["samples"][0]["choice"], last["samples"][0]["correct"], last["answer_tag"]) == ("D", True, "last")
