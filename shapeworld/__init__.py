"""The built-in world: scenes with exact ground truth, their images, captions and word labels."""
