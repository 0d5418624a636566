"""Settings every test shares: never reach a model hub, and stay within this machine's cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # after the environment it reads at import

torch.set_num_threads(min(2, os.cpu_count() or 1))
