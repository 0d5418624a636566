"""Training the captioner: PPO with token-level rewards (TLDR or a verifier), its baselines, and evaluation.

Import from the submodules (`from training.loop import policy_train`); the package itself loads nothing.
"""
