"""Which arm an annotator sees on its next task: randomised, in the project's ratio, balanced per person.

Permuted blocks: the project's integer weights make a block (weights 2/1/1 → tokens, tokens, binary,
none); each annotator walks through its own shuffled copies of that block, one arm per task served.
Within every completed block the annotator has seen each arm exactly in the project's ratio, and the
order inside a block is random, so neither the arm nor a person's habits can drift apart over time.
The shuffle is seeded by (project, annotator, block number): a server restart changes nothing.
Skipped tasks are not counted, so the arm a person skips comes back on the next task and skipping
cannot bias the arms' shares of finished corrections.
"""

from __future__ import annotations

import random

from django.contrib.auth.models import AbstractBaseUser

from annotator.models import Project


def arm_draw(*, annotator: AbstractBaseUser, project: Project, served: int) -> str:
    """The arm of the annotator's next new task in `project`, whose tasks it was `served` so far
    (skipped ones not counted: the count `QueuePlace` keeps)."""
    block = [arm for arm, weight in project.arm_weights.items() for _ in range(weight)]
    block_number, position = divmod(served, len(block))
    random.Random(f"arm:{project.pk}:{annotator.pk}:{block_number}").shuffle(block)
    return block[position]
