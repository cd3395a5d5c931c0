"""How buyers judge each shop after paying (SPEC §7): ratings, refund reasons and customer-service
conversations, from a random stream of its own."""

from __future__ import annotations

import random
from typing import Any

from gmv.tools.simulator.scenarios import HOUR_MS


class TrustBehaviour:
    """How buyers judge each shop after paying (SPEC §7), from a random stream of its own (so the
    rest of the world is the same with it as without it): shop0-like shops sell good products and
    answer within 3 s, shop1-like ones are middling and answer slowly, shop2-like ones sell poor
    products and leave turns unanswered (every third shop alike)."""

    review_rate = 0.35  # paid orders reviewed, 1-48 h later
    conversation_rate = 0.12  # paid orders whose buyer talks to customer service, 5 min-12 h later
    PROFILES = (
        {"name": "fast", "quality": 4.6, "quality_refunds": 0.15},
        {"name": "slow", "quality": 3.6, "quality_refunds": 0.35},
        {"name": "absent", "quality": 2.8, "quality_refunds": 0.6},
    )

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(f"{seed}:trust")

    def profile(self, shop_id: str) -> dict[str, Any]:
        digits = "".join(c for c in shop_id if c.isdigit())
        return self.PROFILES[int(digits or 0) % len(self.PROFILES)]

    def _rating(self, mean: float) -> int:
        return min(5, max(1, round(self.rng.gauss(mean, 0.7))))

    def ratings(self, profile: dict[str, Any]) -> dict[str, int]:
        q = profile["quality"]
        return {"product_rating": self._rating(q), "service_rating": self._rating(q + 0.2),
                "logistics_rating": self._rating(4.2)}

    def refund_reason(self, profile: dict[str, Any]) -> str | None:
        """A quality reason with the profile's share; otherwise another one, or none (means other)."""
        rng = self.rng
        if rng.random() < profile["quality_refunds"]:
            return rng.choice(("quality", "not_as_described", "damaged", "wrong_item"))
        return rng.choice(("changed_mind", "logistics", "other", None))

    def _answer_after(self, profile: dict[str, Any]) -> int | None:
        """How long the shop takes to answer a buyer turn (ms), None for never."""
        rng, roll = self.rng, self.rng.random()
        if profile["name"] == "fast":
            return rng.randrange(300, 3_001) if roll < 0.9 else rng.randrange(3_001, 30_000)
        if profile["name"] == "slow":
            return rng.randrange(5_000, 180_001) if roll < 0.7 else rng.randrange(180_001, 900_000)
        if roll < 0.35:
            return None
        return rng.randrange(20_000, 300_000) if roll < 0.9 else rng.randrange(HOUR_MS + 1, 2 * HOUR_MS)

    def conversation(self, t_ms: int, profile: dict[str, Any]) -> list[tuple[int, str]]:
        """A conversation's messages (time, sender): 1-3 buyer turns, some with a second buyer
        message or a bot's auto-reply; it ends at a turn the shop leaves unanswered."""
        rng, t = self.rng, t_ms
        out: list[tuple[int, str]] = []
        for _ in range(rng.randint(1, 3)):
            out.append((t, "buyer"))
            if rng.random() < 0.3:
                out.append((t + rng.randrange(500, 20_000), "buyer"))
            if rng.random() < 0.4:
                out.append((t + 1_000, "bot"))
            answer = self._answer_after(profile)
            if answer is None:
                break
            t += answer
            out.append((t, "agent"))
            t += rng.randrange(10_000, 600_000)
        return out
