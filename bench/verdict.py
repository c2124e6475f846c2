"""Target lines: the measured value, the target, and "met", "NOT met" or "not measured"
(when the figure was taken under conditions the target does not speak of, e.g. a lower rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MET, NOT_MET, NOT_MEASURED = "met", "NOT met", "not measured"


@dataclass(frozen=True)
class Target:
    label: str
    value: float
    target: float
    unit: str = ""
    higher_is_better: bool = False
    not_measured: str = ""  # why the figure cannot be judged against the target ("" = it can)

    @property
    def verdict(self) -> str:
        if self.not_measured or math.isnan(self.value):
            return NOT_MEASURED
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return MET if ok else NOT_MET

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        why = f" ({self.not_measured})" if self.not_measured else ""
        return (f"{self.label}: {self.value:.{_digits(self.value)}f}{self.unit}  "
                f"(target {sign} {self.target:g}{self.unit}: {self.verdict}{why})")

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "value": None if math.isnan(self.value) else round(self.value, 3),
                "target": self.target, "unit": self.unit.strip(), "higher_is_better": self.higher_is_better,
                "verdict": self.verdict, "not_measured": self.not_measured or None}


def _digits(value: float) -> int:
    return 2 if abs(value) < 10 else 1
