"""Any image file in, the pipeline's one pixel format out: (H, W, 3) uint8, upright, bounded in size.

Every importer (assets/sources.py) and every stage that reads an image goes through `decode_image`, so the rules
below hold everywhere:

- **Faithful to 8 bits.** Pillow's `convert("RGB")` clips 16-bit and 32-bit samples at 255 (a 16-bit grey PNG
  comes out almost all white). Here 16-bit samples keep their high byte (`v >> 8`, what OpenCV's `imread` and
  scikit-image's `img_as_ubyte` do; tests/fixtures/images/ holds OpenCV's own output as the oracle); 32-bit
  integer images (`I`, how Pillow opens some 16-bit TIFFs and PNGs) are read as 16-bit samples; float images (`F`)
  as 0..1 when they lie in it, else 0..255, else stretched between their finite minimum and maximum.
- **Transparency over white.** Alpha (`RGBA`, `LA`, `PA`, `P` with a transparent index) is composited over white,
  what a viewer shows; the colour under a fully transparent pixel is undefined, so dropping alpha is not faithful.
- **CMYK** through its embedded ICC profile to sRGB when it has one (LittleCMS), else Pillow's formula.
- **EXIF orientation** applied (phone photos stored sideways come out upright, as OpenCV's `imread` does), unless
  the caller says the pixel grid must stay as stored (COCO boxes are drawn on the stored grid).
- **Bounded size.** A decompression-bomb guard: more than `max_pixels` (default and ceiling: Pillow's own error
  threshold) is a DataError read from the header, before any pixel is decoded. With `max_side`, images whose longer side is
  larger are downscaled (JPEG decodes at a reduced DCT scale first, so a 12000x9000 photo never exists in full in
  memory); `DecodedImage.original_size` keeps the file's own size for the record.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from assets.stage import DataError

MAX_PIXELS_DEFAULT = 2 * Image.MAX_IMAGE_PIXELS  # Pillow raises DecompressionBombError above this
EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


@dataclass(frozen=True)
class DecodedImage:
    """An image in the pipeline's format and what it was: `original_size` is (width, height) of the file's pixels
    in the output's orientation, before any downscale; `mode` Pillow's mode of the file."""

    rgb: np.ndarray  # (H, W, 3) uint8
    original_size: tuple[int, int]
    mode: str
    exif_orientation: int = 1
    exif_applied: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def downscaled(self) -> bool:
        return self.size != self.original_size


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Pixels of a loaded Pillow image as (H, W, 3) uint8, converting every mode faithfully (module docstring)."""
    mode = img.mode
    if mode in ("RGB", "L", "1"):
        return np.asarray(img.convert("RGB"))
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(img)
        grey = np.clip(grey.astype(np.int64), 0, 65535) >> 8  # the high byte, as OpenCV and scikit-image
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    if mode == "F":
        return np.repeat(_float_to_uint8(np.asarray(img, dtype=np.float64))[..., None], 3, axis=-1)
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(img))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        return to_rgb8(img)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    try:
        return np.asarray(img.convert("RGB"))  # YCbCr, RGBX, ...: Pillow's conversion is exact
    except ValueError as err:
        raise DataError(f"unsupported image mode {mode!r}: {err}") from err


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.any():
        raise DataError("float image without a finite sample")
    low, high = float(values[finite].min()), float(values[finite].max())
    if low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    else:
        scaled = (values - low) / max(high - low, 1e-12) * 255.0
    return np.rint(np.clip(np.where(finite, scaled, 0.0), 0, 255)).astype(np.uint8)


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    profile = img.info.get("icc_profile")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: Pillow's formula below is still a fair rendering
    return img.convert("RGB")


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1..8; 1 when absent or invalid)."""
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION, 1))
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1
    return value if 1 <= value <= 8 else 1


def fitted_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most `max_side`, aspect ratio kept, each side >= 1."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_image(
    data: bytes | Path,
    *,
    max_side: int | None = None,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    apply_exif: bool | None = True,
    expected_size: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode image bytes (or a file) into a `DecodedImage`; raises DataError for anything unusable: corrupt
    bytes, a decompression bomb, an unsupported mode.

    `apply_exif`: True turns the image upright by its EXIF orientation; False keeps the stored grid; None decides
    from `expected_size` (a dataset's declared (width, height)): the image is turned only when the declared size
    is the turned one, so annotations drawn on either grid stay on their pixels.
    """
    source = io.BytesIO(data) if isinstance(data, bytes) else Path(data)
    try:
        with warnings.catch_warnings():
            # our own max_pixels check below replaces Pillow's warning; its hard error is still caught
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise DataError(_bomb_message(width, height, max_pixels))
                orientation = exif_orientation(img)
                turn = _decide_exif(apply_exif, orientation, (width, height), expected_size)
                upright = (height, width) if turn and orientation in _SWAPS_AXES else (width, height)
                target = fitted_size(*upright, max_side)
                if target != upright and img.format == "JPEG":
                    draft_size = (target[1], target[0]) if turn and orientation in _SWAPS_AXES else target
                    img.draft("RGB" if img.mode == "RGB" else img.mode, draft_size)  # DCT-domain reduction
                img.load()
                mode = img.mode
                frame = ImageOps.exif_transpose(img) if turn and orientation != 1 else img
                rgb = to_rgb8(frame)
    except Image.DecompressionBombError as err:  # above Pillow's own limit, raised by Image.open itself
        raise DataError(f"image too large to decode (decompression-bomb guard): {err}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"unreadable image: {type(err).__name__}: {err}") from err
    if (rgb.shape[1], rgb.shape[0]) != target:
        rgb = np.asarray(Image.fromarray(rgb).resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0))
    return DecodedImage(
        rgb=rgb,
        original_size=upright,
        mode=mode,
        exif_orientation=orientation,
        exif_applied=bool(turn and orientation != 1),
    )


def read_rgb(path: Path, max_pixels: int = MAX_PIXELS_DEFAULT) -> np.ndarray:
    """An image file as (H, W, 3) uint8 (stages reading the images an importer wrote); DataError if unusable."""
    return decode_image(Path(path), max_pixels=max_pixels, apply_exif=False).rgb


def _decide_exif(
    apply_exif: bool | None, orientation: int, stored: tuple[int, int], expected: tuple[int, int] | None
) -> bool:
    if apply_exif is not None:
        return apply_exif
    if orientation in _SWAPS_AXES and expected is not None and stored[0] != stored[1]:
        return tuple(expected) == (stored[1], stored[0])
    return False


def _bomb_message(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image too large to decode: {width}x{height} = {width * height / 1e6:.0f} MP > {max_pixels / 1e6:.0f} MP "
        "(decompression-bomb guard: the source option max_pixels, at most Pillow's limit)"
    )
