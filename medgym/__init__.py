"""medgym: Gymnasium environments, image tools and label-free rewards for medical VLM agents.

Importing medgym registers the environments with Gymnasium:

    >>> import gymnasium as gym, medgym
    >>> env = gym.make("MedVQA-Zoom-v0")
"""

from __future__ import annotations

from medgym.core.images import ImageRef, MedImage, Window
from medgym.core.sample import Evidence, Sample
from medgym.core.trajectory import Group, Trajectory, Turn
from medgym.core.view import ViewSpec, render
from medgym.envs import ENV_IDS, EpisodeSession, MedVQAEnv, SessionConfig, register_envs

__version__ = "0.1.0"

__all__ = [
    "ENV_IDS",
    "EpisodeSession",
    "Evidence",
    "Group",
    "ImageRef",
    "MedImage",
    "MedVQAEnv",
    "Sample",
    "SessionConfig",
    "Trajectory",
    "Turn",
    "ViewSpec",
    "Window",
    "render",
]

register_envs()
