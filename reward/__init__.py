"""TLDR: a token-level reward model for vision-language models, and what it is used for.

Import from the submodules (`from reward.model import TokenRewardModel`); the package itself loads nothing.
"""
