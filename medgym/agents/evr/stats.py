"""``EVRStats``: how often EVR fired and what it changed."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["EVRStats"]


@dataclass
class EVRStats:
    """Counters of one EVR run (log them every step, like the tool-call rate).

    Attributes:
        turns_scored: Generated turns that carried a signal.
        fires: Turns whose signal crossed the threshold.
        branches: Resampled turns created (branch mode).
        regrounds: Look-again instructions injected (reground mode).
        compared: Rollouts EVR created or redirected whose final answer could be compared with
            the answer it replaced.
        flipped: Of those, how many ended with a different answer.
        flipped_correct: Summed accuracy of the flipped ones.
    """

    turns_scored: int = 0
    fires: int = 0
    branches: int = 0
    regrounds: int = 0
    compared: int = 0
    flipped: int = 0
    flipped_correct: float = 0.0

    @property
    def fire_rate(self) -> float:
        """Fires per scored turn."""
        return self.fires / self.turns_scored if self.turns_scored else 0.0

    @property
    def flipped_accuracy(self) -> float | None:
        """Mean accuracy of flipped answers (``None`` when none flipped)."""
        return self.flipped_correct / self.flipped if self.flipped else None

    def record_flip(self, before: str | None, after: str | None, accuracy: float) -> None:
        """Count one comparison of an answer EVR replaced with the answer that came instead."""
        self.compared += 1
        if before != after:
            self.flipped += 1
            self.flipped_correct += accuracy

    def as_dict(self) -> dict[str, float | None]:
        """Counters plus the derived rates, for logging."""
        d: dict[str, float | None] = {k: float(v) for k, v in asdict(self).items()}
        d["fire_rate"] = self.fire_rate
        d["flipped_accuracy"] = self.flipped_accuracy
        return d
