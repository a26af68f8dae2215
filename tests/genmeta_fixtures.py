"""Builders of the files the genmeta tests read: raw PNG chunks, TIFF/EXIF blocks, JPEG
segments, WebP chunks, hand-made MP4 boxes and C2PA stores (JUMBF + CBOR).

The byte layouts follow what the real writers produce (Pillow's PngInfo, piexif's
UserComment, ComfyUI's EXIF keys, ffmpeg's mdta keys); Pillow makes the pixel data where a
decodable image is needed.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --- PNG ---


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


IHDR = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
IDAT = chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
IEND = chunk(b"IEND", b"")


def png(*before: bytes, after: tuple[bytes, ...] | list[bytes] = ()) -> bytes:
    """A 1x1 PNG with ``before`` chunks ahead of IDAT and ``after`` chunks behind it."""
    return SIGNATURE + IHDR + b"".join(before) + IDAT + b"".join(after) + IEND


def text(key: str, value: str) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))


def raw_text(key: str, value: bytes) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value)


def ztxt(key: str, value: str | bytes) -> bytes:
    data = value.encode("latin-1") if isinstance(value, str) else value
    return chunk(b"zTXt", key.encode("latin-1") + b"\x00\x00" + zlib.compress(data))


def itxt(key: str, value: str | bytes, compressed: bool = False) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    if compressed:
        data = zlib.compress(data)
    head = key.encode("latin-1") + b"\x00" + bytes([int(compressed), 0]) + b"\x00\x00"
    return chunk(b"iTXt", head + data)


def pillow_image(size: tuple[int, int] = (16, 12), mode: str = "RGB") -> Image.Image:
    """A small image with varied pixels, so a changed byte would change the decode."""
    bands = len(Image.new(mode, (1, 1)).getbands())
    raw = bytes(
        (x * 37 + y * 11 + c * 50) % 256
        for y in range(size[1])
        for x in range(size[0])
        for c in range(bands)
    )
    return Image.frombytes(mode, size, raw)


def pillow_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, data) of every chunk of a PNG."""
    out, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        out.append((kind, data[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def insert_before_iend(data: bytes, *chunks: bytes) -> bytes:
    return data[:-12] + b"".join(chunks) + data[-12:]


# --- TIFF / EXIF ---

ASCII, SHORT, LONG, UNDEFINED, BYTE = 2, 3, 4, 7, 1


def tiff(
    ifd0: dict[int, tuple[int, bytes]],
    exif: dict[int, tuple[int, bytes]] | None = None,
    order: str = ">",
) -> bytes:
    """A TIFF block: IFD0 (and an Exif IFD) with (type, value bytes) per tag."""
    magic = b"MM\x00*" if order == ">" else b"II*\x00"
    entries0 = dict(ifd0)
    if exif is not None:
        entries0[0x8769] = (LONG, b"")  # patched below
    ifds = [entries0] + ([exif] if exif is not None else [])
    sizes = [2 + 12 * len(e) + 4 for e in ifds]
    offsets = [8, 8 + sizes[0]]
    data_at = 8 + sum(sizes)
    blobs = b""
    out = b""
    for k, entries in enumerate(ifds):
        out += struct.pack(order + "H", len(entries))
        for tag in sorted(entries):
            kind, value = entries[tag]
            if tag == 0x8769:
                out += struct.pack(order + "HHII", tag, LONG, 1, offsets[1])
                continue
            unit = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1}[kind]
            count = len(value) // unit
            if len(value) <= 4:
                out += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
            else:
                out += struct.pack(order + "HHII", tag, kind, count, data_at + len(blobs))
                blobs += value + b"\x00" * (len(value) & 1)
        out += struct.pack(order + "I", 0)
        assert len(out) == sum(sizes[: k + 1])
    return magic + struct.pack(order + "I", 8) + out + blobs


def short(value: int, order: str = ">") -> tuple[int, bytes]:
    return SHORT, struct.pack(order + "H", value)


def ascii_tag(value: str) -> tuple[int, bytes]:
    return ASCII, value.encode("utf-8") + b"\x00"


def user_comment(value: bytes) -> dict[int, tuple[int, bytes]]:
    """An Exif IFD holding one UserComment of the given raw bytes."""
    return {0x9286: (UNDEFINED, value)}


def a1111_exif(text: str) -> bytes:
    """What piexif.dump writes for A1111: big-endian TIFF, UNICODE\\0 + UTF-16BE."""
    return tiff({}, user_comment(b"UNICODE\x00" + text.encode("utf-16-be")), ">")


# --- JPEG ---


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def exif_segment(block: bytes) -> bytes:
    return segment(0xE1, b"Exif\x00\x00" + block)


def xmp_segment(xmp: str) -> bytes:
    return segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode("utf-8"))


def jpeg(*segments: bytes, image: Image.Image | None = None, **options: Any) -> bytes:
    """A Pillow JPEG with ``segments`` inserted right after SOI (and Pillow's own APPs)."""
    base = pillow_bytes(image or pillow_image(), "JPEG", quality=90, **options)
    return b"\xff\xd8" + b"".join(segments) + base[2:]


def app11_segments(store: bytes, pieces: int) -> list[bytes]:
    """A JUMBF store split over APP11 segments as C2PA does: later ones repeat the header."""
    header, body = store[:8], store[8:]
    step = -(-len(body) // pieces)
    out = []
    for k in range(pieces):
        part = body[k * step : (k + 1) * step]
        out.append(segment(0xEB, b"JP" + struct.pack(">HI", 1, k + 1) + header + part))
    return out


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before SOS."""
    out, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        out.append((marker, data[at + 4 : at + 2 + length]))
        if marker == 0xDA:
            break
        at += 2 + length
    return out


# --- WebP ---


def riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 12
    while at + 8 <= len(data):
        fourcc, size = struct.unpack("<4sI", data[at : at + 8])
        out.append((fourcc, data[at + 8 : at + 8 + size]))
        at += 8 + size + (size & 1)
    return out


def webp(
    *extra: bytes,
    image: Image.Image | None = None,
    flags: int = 0,
    icc: bytes | None = None,
    lossless: bool = True,
) -> bytes:
    """An extended (VP8X) WebP: the Pillow-encoded image chunk, then ``extra`` chunks."""
    image = image or pillow_image()
    simple = pillow_bytes(image, "WEBP", lossless=lossless, quality=90)
    frames = [riff_chunk(f, d) for f, d in webp_chunks(simple) if f in (b"VP8 ", b"VP8L", b"ALPH")]
    width, height = image.size
    vp8x = bytes([flags | (0x20 if icc else 0)]) + b"\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = riff_chunk(b"VP8X", vp8x) + (riff_chunk(b"ICCP", icc) if icc else b"")
    body += b"".join(frames) + b"".join(extra)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


# --- ISO-BMFF ---


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def full_box(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def data_box(value: str) -> bytes:
    return box(b"data", struct.pack(">II", 1, 0) + value.encode("utf-8"))


def hdlr(handler: bytes) -> bytes:
    return full_box(b"hdlr", b"\x00" * 4 + handler + b"\x00" * 13)


def mdta_meta(items: dict[str, str], iso: bool = True) -> bytes:
    """moov/meta as ffmpeg's use_metadata_tags writes it: hdlr mdta, keys, ilst by index."""
    keys = b"".join(box(b"mdta", name.encode()) for name in items)
    keys_box = full_box(b"keys", struct.pack(">I", len(items)) + keys)
    ilst = b"".join(
        box(struct.pack(">I", k + 1), data_box(value)) for k, value in enumerate(items.values())
    )
    children = hdlr(b"mdta") + keys_box + box(b"ilst", ilst)
    return full_box(b"meta", children) if iso else box(b"meta", children)


def itunes_udta(comment: str) -> bytes:
    """moov/udta/meta (mdir) with an ilst ©cmt item, as ffmpeg writes a comment tag."""
    ilst = box(b"ilst", box(b"\xa9cmt", data_box(comment)))
    return box(b"udta", full_box(b"meta", hdlr(b"mdir") + ilst))


def mp4(
    *top: bytes,
    moov_extra: bytes = b"",
    trak_extra: bytes = b"",
    mdat_first: bool = False,
    frames: bytes = b"frame-one" * 20 + b"frame-two" * 20,
) -> bytes:
    """A small MP4: ftyp, moov (mvhd, one trak with tkhd 640x360 and stco), mdat.

    ``stco`` holds the absolute offset of the mdat payload, so a stripper that moved any
    byte would leave it pointing at the wrong place.
    """
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
    tkhd = full_box(b"tkhd", b"\x00" * 76 + struct.pack(">II", 640 << 16, 360 << 16))
    mvhd = full_box(b"mvhd", b"\x00" * 96)

    def build(offset: int) -> bytes:
        stco = full_box(b"stco", struct.pack(">II", 1, offset))
        stbl = box(b"stbl", stco)
        trak = box(b"trak", tkhd + box(b"mdia", box(b"minf", stbl)) + trak_extra)
        return box(b"moov", mvhd + trak + moov_extra)

    mdat = box(b"mdat", frames)
    if mdat_first:
        return ftyp + mdat + build(len(ftyp) + 8) + b"".join(top)
    moov_size = len(build(0))
    return ftyp + build(len(ftyp) + moov_size + 8) + mdat + b"".join(top)


def c2pa_uuid_box(store: bytes) -> bytes:
    uuid = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
    return box(b"uuid", uuid + b"\x00\x00\x00\x00" + b"manifest\x00" + b"\x00" * 8 + store)


def stco_offset(data: bytes) -> int:
    at = data.index(b"stco")
    return int(struct.unpack(">I", data[at + 12 : at + 16])[0])


# --- C2PA: JUMBF boxes and CBOR ---


def cbor(value: Any) -> bytes:
    """Encode the small CBOR subset C2PA claims use."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


C2PA_TYPE_TAIL = bytes.fromhex("00110010800000aa00389b71")


def superbox(kind: bytes, label: str, *children: bytes) -> bytes:
    jumd = box(b"jumd", kind + C2PA_TYPE_TAIL + b"\x03" + label.encode() + b"\x00")
    return box(b"jumb", jumd + b"".join(children))


def c2pa_store(
    claim_generator: str | None = "ChatGPT/1.0 c2pa-rs/0.31",
    source_type: str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
    claim_v2: bool = False,
) -> bytes:
    """A C2PA manifest store with one manifest: an actions assertion and a claim."""
    actions = {
        "actions": [
            {"action": "c2pa.created", "digitalSourceType": source_type, "softwareAgent": "GPT-4o"}
        ]
    }
    assertion = superbox(b"cbor", "c2pa.actions", box(b"cbor", cbor(actions)))
    store_box = superbox(b"c2as", "c2pa.assertions", assertion)
    if claim_v2:
        claim: dict[str, Any] = {
            "claim_generator_info": {"name": "Adobe Firefly", "version": "2.0"}
        }
    else:
        claim = {"claim_generator": claim_generator, "dc:format": "image/png"}
    claim_box = superbox(b"c2cl", "c2pa.claim", box(b"cbor", cbor(claim)))
    manifest = superbox(
        b"c2ma", "urn:uuid:0d4e8c9a-1111-2222-3333-444455556666", store_box, claim_box
    )
    return superbox(b"c2pa", "c2pa", manifest)


# --- generator payloads ---

A1111_TEXT = (
    'a cat, "hat"\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, '
    "Seed: 42, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    'Lora hashes: "add_detail: 7c6bad76eb54, more: 0123456789ab", Version: v1.10.1'
)

COMFY_GRAPH: dict[str, Any] = {
    "3": {
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
        "class_type": "KSampler",
    },
    "4": {
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
        "class_type": "CheckpointLoaderSimple",
    },
    "5": {
        "inputs": {"width": 512, "height": 768, "batch_size": 1},
        "class_type": "EmptyLatentImage",
    },
    "6": {
        "inputs": {"text": "beautiful scenery nature glass bottle landscape", "clip": ["4", 1]},
        "class_type": "CLIPTextEncode",
    },
    "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode"},
    "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage"},
}


def comfy_graph(**changes: Any) -> dict[str, Any]:
    """A deep copy of the default graph, with top-level nodes replaced or added."""
    graph: dict[str, Any] = json.loads(json.dumps(COMFY_GRAPH))
    graph.update(changes)
    return graph


WORKFLOW = {"last_node_id": 9, "last_link_id": 9, "nodes": [], "links": [], "version": 0.4}


# --- WebM (EBML) ---


def element(ident: int, payload: bytes, unknown_size: bool = False) -> bytes:
    """One EBML element: its id, a minimal size field (or "unknown"), its payload."""
    head = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    if unknown_size:
        return head + b"\x01\xff\xff\xff\xff\xff\xff\xff" + payload
    n = 1
    while len(payload) >= (1 << (7 * n)) - 1:
        n += 1
    return head + (len(payload) | (1 << (7 * n))).to_bytes(n, "big") + payload


def webm(tags: dict[str, str], unknown_sizes: bool = False, frames: bytes = b"\x00" * 100) -> bytes:
    """A small WebM: EBML header, Segment (Info, Tracks 640x360, one Cluster, Tags)."""
    header = element(0x1A45DFA3, element(0x4282, b"webm"))
    info = element(0x1549A966, element(0x2AD7B1, (1_000_000).to_bytes(3, "big")))
    video = element(0xE0, element(0xB0, (640).to_bytes(2, "big")) + element(0xBA, b"\x01\x68"))
    tracks = element(0x1654AE6B, element(0xAE, element(0xD7, b"\x01") + video))
    cluster_body = element(0xE7, b"\x00") + element(0xA3, b"\x81\x00\x00\x80" + frames)
    cluster = element(0x1F43B675, cluster_body, unknown_size=unknown_sizes)
    simple = b"".join(
        element(0x67C8, element(0x45A3, name.encode()) + element(0x4487, value.encode()))
        for name, value in tags.items()
    )
    tag_box = element(0x1254C367, element(0x7373, element(0x63C0, b"") + simple))
    body = info + tracks + cluster + tag_box
    return header + element(0x18538067, body, unknown_size=unknown_sizes)
