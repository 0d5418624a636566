"""The synthetic stream of reward-model training: how a pool orders a scene's captions."""

from reward.train import synthetic_pools
from shapeworld.scene import WorldConfig


def runs_of_images(pool) -> list[int]:
    """Ids of the images in pool order, consecutive repeats merged."""
    runs: list[int] = []
    for example in pool:
        if not runs or runs[-1] != id(example.image):
            runs.append(id(example.image))
    return runs


def test_scenes_kept_together_put_a_true_caption_beside_its_negatives():
    pool = next(synthetic_pools(3, WorldConfig(), 64, scenes_together=True))
    runs = runs_of_images(pool)
    assert len(runs) == len(set(runs))  # every image's captions are one contiguous run
    assert len(runs) < len(pool)  # and scenes do come with negatives
    assert all(pool[i].category == "true" or pool[i - 1].image is pool[i].image for i in range(1, len(pool)))


def test_by_default_a_pool_is_shuffled_caption_by_caption():
    pool = next(synthetic_pools(3, WorldConfig(), 64))
    runs = runs_of_images(pool)
    assert len(runs) > len(set(runs))  # some scene's captions are apart


def test_both_orders_hold_the_same_captions():
    together = next(synthetic_pools(3, WorldConfig(), 64, scenes_together=True))
    shuffled = next(synthetic_pools(3, WorldConfig(), 64))
    assert sorted(e.caption for e in together) == sorted(e.caption for e in shuffled)


def test_image_side_negatives_join_the_pool_when_asked():
    pool = next(synthetic_pools(3, WorldConfig(), 64, image_side_share=1.0))
    image_side = [e for e in pool if e.category == "image_side"]
    assert image_side and all(e.bad_spans for e in image_side)
    assert not [e for e in next(synthetic_pools(3, WorldConfig(), 64)) if e.category == "image_side"]


def test_reflected_negatives_join_the_pool_when_asked():
    pool = next(synthetic_pools(3, WorldConfig(), 64, reflection_share=1.0))
    reflected = [e for e in pool if e.category == "reflected"]
    assert reflected and all(e.bad_spans for e in reflected)
    assert not [e for e in next(synthetic_pools(3, WorldConfig(), 64)) if e.category == "reflected"]
