"""Which model answers: canary weights with sticky keys, shadow copies, and the fallback rule."""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from services.tabular.spec import Routing

Role = Literal["champion", "challenger"]


class Router:
    """Assigns each request to the champion or the challenger.

    canary: the challenger answers ``challenger_weight`` of requests. A request with a key is sticky: the key's
    salted hash picks the same model every time (and for every worker). Without a key the draw is random.
    shadow and champion_only: the champion always answers (shadow also sends the challenger a copy).
    """

    def __init__(self, routing: Routing, has_challenger: bool, rng: random.Random | None = None) -> None:
        self.routing = routing
        self.has_challenger = has_challenger
        self.rng = rng or random.Random()

    @property
    def shadow(self) -> bool:
        return self.has_challenger and self.routing.mode == "shadow"

    def bucket(self, key: str) -> float:
        """A stable number in [0, 1) for ``key`` (salted, so a new salt reshuffles the assignment)."""
        digest = hashlib.sha256(f"{self.routing.salt}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def choose(self, key: str | None) -> Role:
        if not self.has_challenger or self.routing.mode != "canary" or self.routing.challenger_weight <= 0:
            return "champion"
        draw = self.bucket(key) if key is not None else self.rng.random()
        return "challenger" if draw < self.routing.challenger_weight else "champion"
