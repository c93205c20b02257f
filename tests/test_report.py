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


def test_an_infinite_bound_is_shown_not_hidden():
    # bootstrap intervals keep infinite resamples: a bound at inf is a finding (the data allow any
    # scale), and printing the value alone, or a floor "≈ 0", hid it
    import math

    from jaxscale.fit import Estimate
    from jaxscale.report import _est, floor_note

    assert _est(Estimate(1.5, (1.0, math.inf), math.inf)) == "1.5 [1, inf]"
    assert _est(Estimate(1.5)) == "1.5"
    assert "E unbounded above" in floor_note([("Approach 3", "E", Estimate(1e-9, (0.0, math.inf)), False)])
    assert "E up to 0.5" in floor_note([("Approach 3", "E", Estimate(1e-9, (0.0, 0.5)), False)])
