"""final_outcome: what the gate did with an item decides the one outcome that is counted and recorded."""

from __future__ import annotations

from inspection.decision import Decision, Verdict
from station.outcomes import final_outcome
from station.signalling import GateEvent, ItemResult, Outcome

PASS = Decision(Verdict.PASS, None, 0.01, "good", "defect score 0.010 below pass threshold")
REJECT = Decision(Verdict.REJECT, "chipped", 0.97, "chipped", "defect score 0.970")


def event(result: ItemResult, outcome: Outcome = Outcome.PUBLISHED, withheld: str | None = None) -> GateEvent:
    return GateEvent(result.sequence, outcome, result, 1.0, 1.0, 0.0, withheld)


def test_a_pass_on_time_passes_and_a_late_pass_is_rejected() -> None:
    on_time = ItemResult.from_decision(1, PASS, ("good", "chipped"))
    assert final_outcome(PASS, event(on_time)).verdict == Verdict.PASS
    late = final_outcome(PASS, event(on_time.as_late()))
    assert (late.verdict, late.late) == (Verdict.REJECT, True)


def test_a_withheld_pass_is_a_fault_that_names_why_and_keeps_the_decision() -> None:
    withheld = ItemResult.from_decision(2, PASS, ("good", "chipped")).as_withheld()
    outcome = final_outcome(PASS, event(withheld, withheld="the archive failed (disk full)"))
    assert (outcome.verdict, outcome.late) == (Verdict.FAULT, False)
    assert outcome.reason == "pass withheld, rejected: the archive failed (disk full) (defect score 0.010 below pass threshold)"


def test_a_withheld_pass_that_missed_the_gate_is_reported_as_missing_the_gate() -> None:
    withheld = ItemResult.from_decision(3, PASS, ("good", "chipped")).as_withheld()
    outcome = final_outcome(PASS, event(withheld, Outcome.MISSED_GATE, withheld="the archive failed"))
    assert outcome.verdict == Verdict.FAULT and outcome.reason.startswith("decision came after the item left the reject gate")


def test_no_decision_by_the_deadline_is_a_late_fault() -> None:
    outcome = final_outcome(None, event(ItemResult.timed_out(4)))
    assert (outcome.verdict, outcome.late) == (Verdict.FAULT, True)
    assert final_outcome(REJECT, event(ItemResult.timed_out(5))).reason == "no decision by the time the item reached the gate"
