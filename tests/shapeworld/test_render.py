import random

import numpy as np

from shapeworld.render import BACKGROUND, RGB, scene_render, scenes_drawn
from shapeworld.scene import SHAPES, ObjectGroup, Scene, scene_sample


def _single(shape: str = "circle", colour: str = "red", size: str = "large", letter: str | None = None) -> Scene:
    return Scene(groups=(ObjectGroup(shape, colour, size, 1, letter, ((0.5, 0.5),)),))


def test_same_scene_gives_the_same_pixels():
    scene = scene_sample(random.Random(3))
    assert np.array_equal(np.asarray(scene_render(scene)), np.asarray(scene_render(scene)))


def test_image_is_rgb_of_the_asked_size():
    image = scene_render(scene_sample(random.Random(0)), size=48)
    assert image.mode == "RGB" and image.size == (48, 48)


def test_object_is_drawn_in_its_colour_where_it_stands_on_a_dark_background():
    pixels = np.asarray(scene_render(_single(colour="blue")))
    assert tuple(pixels[32, 32]) == RGB["blue"]
    assert tuple(pixels[1, 1]) == BACKGROUND


def test_every_shape_looks_different():
    masks = [np.asarray(scene_render(_single(shape))).sum(axis=2) > 100 for shape in SHAPES]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).sum() > 20, (SHAPES[i], SHAPES[j])


def test_large_is_larger_than_small():
    area = {size: (np.asarray(scene_render(_single(size=size))).sum(axis=2) > 100).sum() for size in ("small", "large")}
    assert area["large"] > 2 * area["small"]


def test_a_letter_changes_the_pixels_of_its_object():
    plain = np.asarray(scene_render(_single(letter=None))).astype(int)
    marked = np.asarray(scene_render(_single(letter="K"))).astype(int)
    other = np.asarray(scene_render(_single(letter="T"))).astype(int)
    assert np.abs(plain - marked).sum() > 0 and np.abs(marked - other).sum() > 0


def test_scenes_drawn_from_one_seed_are_always_the_same_set():
    scenes, images = scenes_drawn(4, seed=11)
    again, again_images = scenes_drawn(4, seed=11)
    assert scenes == again and [i.tobytes() for i in images] == [i.tobytes() for i in again_images]
    assert scenes_drawn(4, seed=12)[0] != scenes
    assert images[0].tobytes() == scene_render(scenes[0]).tobytes()
