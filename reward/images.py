"""Opening images safely: every failure names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Far above any photo an annotator looks at, far below what a decompression bomb expands to.
MAX_PIXELS = 50_000_000


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the reason."""


def image_open(path: Path | str, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file fully as RGB, or raise `ImageError` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"no image file at {path}")
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                raise ImageError(f"{path} is {image.width}x{image.height} pixels, over the limit of {max_pixels:,}")
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image Pillow can read") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"{path} is corrupt or truncated ({error})") from None


def image_check(image: object, *, index: int) -> Image.Image:
    """An in-memory image as RGB, or `ImageError` naming its position in the batch."""
    if not isinstance(image, Image.Image):
        raise ImageError(f"image {index} is a {type(image).__name__}, not a PIL image")
    return image if image.mode == "RGB" else image.convert("RGB")
