"""The study and Chinchilla reports mark an allocation that comes from an unidentified exponent."""

from jaxscale.report import NOT_IDENTIFIED_MARK, identified_mark, not_identified_note


def test_unidentified_approaches_are_marked_and_footnoted():
    fits = {"approach1": {"identified": True}, "approach2": {"identified": False},
            "approach3": {"error": "ValueError: too few points", "identified": False}}
    assert identified_mark(fits, 1) == ""
    assert identified_mark(fits, 2) == identified_mark(fits, 3) == NOT_IDENTIFIED_MARK
    assert identified_mark({}, 1) == NOT_IDENTIFIED_MARK   # an approach not fitted at all
    note = not_identified_note(fits, (2, 3))
    assert note.startswith(f"{NOT_IDENTIFIED_MARK} Approach 2, 3: not identified at this scale")
    assert not_identified_note(fits, (1,)) == ""
