"""The image formats and option values the service knows: plain data, no imaging library.

The one place these facts live. imaging reads them to decode and encode; the HTTP client
and its CLI read them without importing Pillow.
"""

from __future__ import annotations

# Pillow format name -> MIME type of every input format we accept.
ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",  # HEIC (HEVC) and the other HEIF brands but AVIF's, via pillow-heif
    "AVIF": "image/avif",  # Pillow's own plugin (its wheels bundle libavif)
}

# Requested output format -> (Pillow format name, MIME type).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
    "avif": ("AVIF", "image/avif"),
}
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp", "avif": "avif"}
# A thumbnail's Content-Type -> its file extension (what the client and the web page save as).
TYPE_EXTENSIONS: dict[str, str] = {mime: EXTENSIONS[name]
                                   for name, (_, mime) in OUTPUT_FORMATS.items()}
# Other names a request may give an output format by -> the name in OUTPUT_FORMATS.
FORMAT_ALIASES: dict[str, str] = {"jpg": "jpeg"}
# Output formats a quality (1-100) applies to; PNG is lossless.
LOSSY_FORMATS = ("jpeg", "webp", "avif")

FITS = ("contain", "cover")
# Where a fit=cover crop window sits: the compass points (as in libvips' and imgproxy's
# gravity), or "smart" (the most salient window, see saliency.py).
GRAVITIES = ("center", "north", "northeast", "east", "southeast", "south", "southwest", "west",
             "northwest", "smart")
