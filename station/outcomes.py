"""Pure functions from what the gate did with an item to its final, counted outcome."""

from __future__ import annotations

from dataclasses import dataclass

from inspection.decision import Decision, Verdict
from station.signalling import GateEvent, Outcome


@dataclass(frozen=True, slots=True)
class FinalOutcome:
    verdict: Verdict  # what happened to the item at the line: exactly one per sequence number
    late: bool
    reason: str


def final_outcome(decision: Decision | None, event: GateEvent) -> FinalOutcome:
    """An item passes only when its decision was pass AND the PLC got that result in time.

    Late decisions are rejected (counted as reject unless already uncertain/fault); a pass the gate
    withheld (the station could no longer record it), a result the PLC never received, an item that
    missed the gate or was abandoned at shutdown, and an item with no decision by its deadline are
    faults. Never a silent pass.
    """
    withheld = event.withheld_reason is not None  # only a pass on time is withheld, so it had a decision
    if decision is None or event.result.error and decision.verdict != Verdict.FAULT and not withheld:
        return FinalOutcome(Verdict.FAULT, True, "no decision by the time the item reached the gate")
    if event.outcome == Outcome.PUBLISH_FAILED:
        return FinalOutcome(Verdict.FAULT, event.result.late, f"PLC did not receive the result ({decision.reason})")
    if event.outcome == Outcome.MISSED_GATE:
        return FinalOutcome(Verdict.FAULT, True, f"decision came after the item left the reject gate ({decision.reason})")
    if event.outcome == Outcome.ABANDONED:
        return FinalOutcome(Verdict.FAULT, True, f"station stopped before the item reached the gate ({decision.reason})")
    if withheld:
        return FinalOutcome(Verdict.FAULT, False, f"pass withheld, rejected: {event.withheld_reason} ({decision.reason})")
    if event.result.late:
        verdict = decision.verdict if decision.verdict != Verdict.PASS else Verdict.REJECT
        return FinalOutcome(verdict, True, f"late decision, rejected ({decision.reason})")
    return FinalOutcome(decision.verdict, False, decision.reason)
