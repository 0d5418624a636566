import itertools
import json
import math
import random

from shapeworld.scene import (
    COLOURS,
    LETTERS,
    MIN_ORDER_GAP,
    RADIUS,
    SHAPES,
    ObjectGroup,
    Scene,
    WorldConfig,
    relation_holds,
    scene_from_dict,
    scene_reflected,
    scene_relation,
    scene_sample,
    scene_to_dict,
)


def _group(x: float, y: float, **kwargs) -> ObjectGroup:
    fields = {"shape": "circle", "colour": "red", "size": "small", "count": 1, "letter": None}
    return ObjectGroup(**(fields | kwargs), positions=((x, y),))


def test_world_has_the_promised_vocabulary_of_things():
    assert len(SHAPES) >= 6 and len(set(SHAPES)) == len(SHAPES)
    assert len(COLOURS) == 8
    assert all(len(letter) == 1 and letter.isupper() for letter in LETTERS)


def test_same_seed_gives_the_same_scene_and_another_seed_another():
    assert scene_sample(random.Random(7)) == scene_sample(random.Random(7))
    assert len({scene_sample(random.Random(seed)) for seed in range(20)}) == 20


def test_scenes_respect_the_config_and_never_overlap():
    config = WorldConfig()
    for seed in range(500):
        scene = scene_sample(random.Random(seed), config)
        assert 1 <= len(scene.groups) <= config.max_groups
        assert sum(g.count for g in scene.groups) <= config.max_objects
        assert len({(g.shape, g.colour, g.size) for g in scene.groups}) == len(scene.groups)
        objects = [(x, y, RADIUS[g.size]) for g in scene.groups for x, y in g.positions]
        for g in scene.groups:
            assert len(g.positions) == g.count <= config.max_count
            assert g.letter is None or (g.size == "large" and g.count == 1 and g.letter in LETTERS)
        for k, (x, y, r) in enumerate(objects):
            assert r <= x <= 1 - r and r <= y <= 1 - r
            for x2, y2, r2 in objects[k + 1 :]:
                assert math.hypot(x - x2, y - y2) >= r + r2


def test_groups_come_left_to_right_with_a_clear_relation_between_neighbours():
    for seed in range(500):
        groups = scene_sample(random.Random(seed)).groups
        assert [g.centre[0] for g in groups] == sorted(g.centre[0] for g in groups)
        for a, b in itertools.pairwise(groups):
            relation = scene_relation(a, b)
            assert relation is not None and relation_holds(relation, a, b)


def test_group_count_follows_its_weights_roughly():
    sizes = [len(scene_sample(random.Random(seed)).groups) for seed in range(1000)]
    assert sizes.count(1) > sizes.count(3) > sizes.count(4) > 0


def test_relation_is_read_from_image_coordinates_where_y_grows_down():
    left, right = _group(0.2, 0.5), _group(0.8, 0.5)
    high, low = _group(0.5, 0.1), _group(0.5, 0.9)
    assert scene_relation(left, right) == "left of"
    assert scene_relation(right, left) == "right of"
    assert scene_relation(high, low) == "above"
    assert scene_relation(low, high) == "below"
    assert scene_relation(_group(0.2, 0.2), _group(0.8, 0.8)) is None


def test_a_diagonal_allows_both_directions_but_never_the_opposite():
    a, b = _group(0.2, 0.25), _group(0.8, 0.85)
    assert relation_holds("left of", a, b) and relation_holds("above", a, b)
    assert not relation_holds("right of", a, b) and not relation_holds("below", a, b)
    flat_left, flat_right = _group(0.2, 0.5), _group(0.8, 0.55)
    assert not relation_holds("above", flat_left, flat_right)


def test_scene_survives_a_json_round_trip():
    for seed in range(50):
        scene = scene_sample(random.Random(seed))
        assert scene_from_dict(json.loads(json.dumps(scene_to_dict(scene)))) == scene


def test_a_scene_is_a_hashable_value():
    scene = Scene(groups=(_group(0.5, 0.5),))
    assert scene == Scene(groups=(_group(0.5, 0.5),)) and hash(scene) == hash(Scene(groups=(_group(0.5, 0.5),)))


def test_consecutive_groups_are_clearly_ordered_left_to_right():
    rng = random.Random(11)
    for _ in range(300):
        groups = scene_sample(rng).groups
        for a, b in itertools.pairwise(groups):
            assert b.centre[0] - a.centre[0] >= MIN_ORDER_GAP


def test_objects_sit_near_the_centres_of_the_layout_grid_unless_it_is_off():
    config = WorldConfig()

    def off_centre(value: float) -> float:
        return abs(value * config.grid % 1 - 0.5) / config.grid

    for seed in range(300):
        for group in scene_sample(random.Random(seed), config).groups:
            radius = RADIUS[group.size]
            for value in (v for position in group.positions for v in position):
                moved_inside = value in (round(radius, 4), round(1 - radius, 4))
                assert off_centre(value) <= config.grid_jitter + 1e-4 or moved_inside
    anywhere = WorldConfig(grid=0)
    xs = [x for seed in range(100) for g in scene_sample(random.Random(seed), anywhere).groups for x, _ in g.positions]
    assert max(map(off_centre, xs)) > 0.1


def test_a_group_of_several_objects_stays_together_on_the_grid():
    for seed in range(300):
        for group in scene_sample(random.Random(seed)).groups:
            first = group.positions[0]
            reach = (1 if group.size == "small" else 2) / WorldConfig().grid + 2 * WorldConfig().grid_jitter + 0.06
            assert all(max(abs(x - first[0]), abs(y - first[1])) <= reach for x, y in group.positions)


def test_a_reflection_turns_the_relations_it_should_and_keeps_everything_else():
    rng = random.Random(4)
    turned = {
        "vertical": {"left of": "right of", "right of": "left of"},
        "horizontal": {"above": "below", "below": "above"},
        "diagonal": {"left of": "above", "above": "left of", "right of": "below", "below": "right of"},
    }
    for _ in range(100):
        scene = scene_sample(rng)
        canonical = Scene(groups=tuple(sorted(scene.groups, key=lambda g: g.centre[0])))
        for line, becomes in turned.items():
            reflected = scene_reflected(scene, line)
            assert [g.centre[0] for g in reflected.groups] == sorted(g.centre[0] for g in reflected.groups)
            assert _kinds(reflected) == _kinds(scene)
            for a, b in itertools.combinations(scene.groups, 2):
                relation = scene_relation(_same_kind(reflected, a), _same_kind(reflected, b))
                assert relation == becomes.get(scene_relation(a, b), scene_relation(a, b))
            assert scene_reflected(reflected, line) == canonical


def _kinds(scene: Scene) -> list[tuple]:
    return sorted((g.shape, g.colour, g.size, g.count, g.letter) for g in scene.groups)


def _same_kind(scene: Scene, group: ObjectGroup) -> ObjectGroup:
    (match,) = [g for g in scene.groups if (g.shape, g.colour, g.size) == (group.shape, group.colour, group.size)]
    return match
