"""medgym: Gymnasium environments, image tools and label-free rewards for medical VLM agents."""

from __future__ import annotations

__version__ = "0.1.0"
