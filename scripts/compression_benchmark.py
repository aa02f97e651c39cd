"""Compression: each VQ-VAE zoo entry's PSNR at its bits per image, against JPEG and WebP at the same or more bytes.

    KERAS_AE_DATA=../shared/data python scripts/compression_benchmark.py     # writes benchmarks/compression.json

Every zoo entry whose family compresses (has `compress`) and has trained weights is measured on its card's full
test split, read through `keras_ae.data` (`--limit N`: the first N images). The VQ-VAE's bytes are its code
indices, `bits_per_image / 8`, before any entropy coding, with no header (the model fixes the code's shape). JPEG and WebP (Pillow, lossy, one image at a time, at
each quality in QUALITIES) are counted twice: whole files, and payload only, without fixed headers:
- JPEG (Pillow's baseline, one scan): only the entropy-coded scan data, the bytes after the SOS marker's segment
  up to the EOI marker; the JFIF, quantisation and Huffman tables and the frame header are not counted.
- WebP: only the payload of the `VP8 ` (or `VP8L`) chunk; the 12-byte RIFF header and the 8-byte chunk header are
  not counted (the payload still holds VP8's 10-byte frame header).
Each codec is reported at the smallest quality whose mean payload bytes are >= the VQ-VAE's bytes. PSNR is from
the mean squared error over all test pixels (data range 1), as the zoo reports it, for every method.
"""

import argparse
import datetime
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from keras_ae import cards, kinds, metrics, weights
from keras_ae.models import Task

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "compression.json"
CODECS = ("JPEG", "WEBP")
QUALITIES = (*range(0, 21), *range(25, 101, 5))
JPEG_START, JPEG_SCAN, JPEG_END = b"\xff\xd8", 0xDA, b"\xff\xd9"


def encode(image, codec, quality):
    """One uint8 image, (height, width), (height, width, 1) or (height, width, 3), as the bytes of a lossy file."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"Codecs take uint8 images; got dtype {image.dtype}. Convert with np.round(x * 255).astype('uint8').")
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(buffer, format=codec, quality=quality)
    return buffer.getvalue()


def decode(data, channels=1):
    """The uint8 image in `data`, with `channels` channels (1: gray, 3: RGB), shape (height, width, channels)."""
    image = np.asarray(Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB"))
    return image.reshape((*image.shape[:2], channels))


def jpeg_scan_data(data):
    """The entropy-coded scan bytes of a baseline JPEG: after the SOS segment, before EOI."""
    if data[:2] != JPEG_START or data[-2:] != JPEG_END:
        raise ValueError("Not a whole JPEG file: expected it to start with SOI (FF D8) and end with EOI (FF D9).")
    position = 2
    while data[position] == 0xFF and data[position + 1] != JPEG_SCAN:  # marker segments: FF, marker, 2-byte length
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    if data[position] != 0xFF:
        raise ValueError(f"Malformed JPEG: expected a marker at byte {position}.")
    scan = data[position + 2 + int.from_bytes(data[position + 2:position + 4], "big"):-2]
    if b"\xff" + bytes([JPEG_SCAN]) in scan:
        raise ValueError("A JPEG with several scans (progressive): expected a baseline JPEG with one scan.")
    return scan


def webp_chunk_payload(data):
    """The payload of a WebP file's `VP8 ` or `VP8L` chunk, without the RIFF header and the chunk header."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("Not a WebP file: expected it to start with RIFF....WEBP.")
    position = 12
    while position + 8 <= len(data):
        kind, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            return data[position + 8:position + 8 + size]
        position += 8 + size + size % 2  # chunks are padded to an even size
    raise ValueError("WebP file without a VP8 or VP8L chunk.")


def payload(data):
    """The bytes of a JPEG or WebP file that carry the image, headers left out (see the module's docstring)."""
    return jpeg_scan_data(data) if data[:2] == JPEG_START else webp_chunk_payload(data)


def psnr_db(mse):
    """PSNR in dB of a mean squared error on data in [0, 1]; inf for a perfect copy."""
    return math.inf if mse == 0 else metrics.psnr(mse)


def codec_point(images, codec, quality):
    """Mean whole and payload bytes, MSE and PSNR of uint8 `images` (batch, height, width, channels) through a codec."""
    whole, kept, squared_error = [], [], 0.0
    for image in images:
        data = encode(image, codec, quality)
        whole.append(len(data))
        kept.append(len(payload(data)))
        squared_error += float(np.sum(np.square(decode(data, image.shape[-1]) / 255.0 - image / 255.0)))
    mse = squared_error / images.size
    return {"quality": quality, "whole_bytes": float(np.mean(whole)), "payload_bytes": float(np.mean(kept)),
            "mse": mse, "psnr_db": psnr_db(mse)}


def at_same_or_more_bytes(curve, target_bytes):
    """The point of the lowest quality whose mean payload bytes are >= `target_bytes`, or None if none reaches it."""
    reaching = [point for point in curve if point["payload_bytes"] >= target_bytes]
    return min(reaching, key=lambda point: point["quality"]) if reaching else None


def measure_entry(card, model, limit=None):
    """The VQ-VAE's rate and PSNR on the card's test split, and each codec's curve and its point at the same or more bytes."""
    images = kinds.Examples().arrays(card, "test", limit)[0]
    code_bytes = model.bits_per_image / 8
    result = {"test_examples": len(images),
              "vqvae": {**Task(model).measure(images, images), "bits_per_image": model.bits_per_image, "bytes": code_bytes}}
    pixels = np.round(images * 255).astype("uint8")
    for codec in CODECS:
        curve = [codec_point(pixels, codec, quality) for quality in QUALITIES]
        result[codec] = {"at_same_or_more_bytes": at_same_or_more_bytes(curve, code_bytes), "curve": curve}
    return result


def table(results):
    """A markdown table: per entry, the VQ-VAE and each codec at the same or more bytes."""
    lines = ["| entry | method | bytes/image (payload) | bytes/image (whole file) | PSNR dB |", "|---|---|---|---|---|"]
    for name, result in results.items():
        vqvae = result["vqvae"]
        lines.append(f"| `{name}` | VQ-VAE, {vqvae['bits_per_image']:g} bits of code indices | {vqvae['bytes']:.1f} | "
                     f"{vqvae['bytes']:.1f} | {vqvae['psnr_db']:.2f} |")
        for codec in CODECS:
            point = result[codec]["at_same_or_more_bytes"]
            if point is None:
                lines.append(f"| `{name}` | {codec}: no quality reaches {vqvae['bytes']:.1f} bytes | | | |")
                continue
            lines.append(f"| `{name}` | {codec} quality {point['quality']} | {point['payload_bytes']:.1f} | "
                         f"{point['whole_bytes']:.1f} | {point['psnr_db']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a zoo entry (repeatable; default: every entry whose family compresses)")
    parser.add_argument("--limit", type=int, help="measure only the first N test images")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    args = parser.parse_args(argv)
    names = args.model or [name for name in cards.list_models() if hasattr(cards.model_class(cards.model_card(name)), "compress")]
    results = {}
    for name in names:
        card = cards.model_card(name)
        if not hasattr(cards.model_class(card), "compress"):
            parser.error(f"{name} is a {card['model']['class_name']}, which does not compress; choose a VQ-VAE entry.")
        if not card["weights"].get("sha256"):
            print(f"{name}: skipped, no trained weights yet (KERAS_AE_DATA=../shared/data python scripts/train_zoo.py {name})")
            continue
        results[name] = measure_entry(card, cards.load(name), args.limit)
    if not results:
        print(f"Nothing measured; {args.output} is unchanged.")
        return
    print(table(results))
    command = " ".join(["KERAS_AE_DATA=../shared/data python scripts/compression_benchmark.py", *(argv or sys.argv[1:])])
    report = {"date": datetime.date.today().isoformat(), "command": command, "qualities": list(QUALITIES), "entries": results}
    weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(report, indent=2) + "\n"), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
