"""The smallest built-in captioner that still learns: the tests that need a captioner build this one in seconds."""

from shapeworld.tiny_vlm import TinyVlmConfig

MICRO = TinyVlmConfig(
    image_size=32,
    patch_size=8,
    vision_hidden=32,
    vision_layers=1,
    vision_heads=2,
    text_hidden=32,
    text_layers=1,
    text_heads=2,
)
