"""What every scenario gets: the environment, the pinning, the run's length."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .env import Env, Pinning


@dataclass
class Context:
    env: Env
    pin: Pinning
    tmp: Path
    smoke: bool = False
    rounds: int = 3
    quiet: bool = False
    started: float = field(default_factory=time.monotonic)

    def seconds(self, full: float, smoke: float = 1.0) -> float:
        """How long one measurement runs: ``full`` normally, ``smoke`` in smoke mode."""
        return smoke if self.smoke else full

    def pick(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)
            sys.stdout.flush()
