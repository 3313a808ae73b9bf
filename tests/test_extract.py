import pytest

from medbridge.score.extract import extract_choice, well_formatted

LETTERS = "ABCD"


@pytest.mark.parametrize(
    "text,choice,method",
    [
        ("<think>looks like a liver</think><answer>B</answer>", "B", "tag"),
        ("<think>x</think><answer> c </answer>", "C", "tag"),  # lowercase inside the tag
        ("<answer>A</answer> wait, no <answer>D</answer>", "D", "tag"),  # two answers: the last wins
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
