"""genmeta: each generator's metadata is recognised and normalised into the record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dreamflare_store import genmeta
from dreamflare_store.genmeta.infotext import parse_pairs
from tests import genmeta_fixtures as f


def record(data: bytes) -> dict[str, Any]:
    found = genmeta.extract(data)
    assert found is not None
    assert tuple(found.record) == genmeta.RECORD_KEYS
    json.dumps(found.to_dict(), allow_nan=False)  # the record travels as strict JSON
    return found.record


# --- A1111 family ---


def test_a1111_baseline() -> None:
    rec = record(f.png(f.text("parameters", f.A1111_TEXT)))
    assert rec["generator"] == "A1111"
    assert rec["prompt"] == 'a cat, "hat"'
    assert rec["negativePrompt"] == "blurry"
    assert (rec["seed"], rec["steps"], rec["cfgScale"]) == ("42", 20, 7.0)
    assert (rec["sampler"], rec["model"], rec["modelHash"]) == (
        "Euler a",
        "v1-5-pruned-emaonly",
        "6ce0161689",
    )
    assert (rec["width"], rec["height"]) == (512, 512)
    assert [lora["name"] for lora in rec["loras"]] == ["add_detail", "more"]
    assert rec["aiGenerated"] is True


def test_multiline_prompt_and_negative_keep_interior_blank_lines() -> None:
    text = (
        "\nline1\n\nline2\nNegative prompt: n1\nn2\n"
        "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"
    )
    rec = record(f.png(f.text("parameters", text)))
    assert rec["prompt"] == "line1\n\nline2"
    assert rec["negativePrompt"] == "n1\nn2"


def test_prompt_only_and_no_negative() -> None:
    rec = record(f.png(f.text("parameters", "just a prompt\nsecond line")))
    assert rec["generator"] == "A1111"
    assert rec["prompt"] == "just a prompt\nsecond line"
    assert rec["negativePrompt"] is None and rec["steps"] is None
    rec = record(f.png(f.text("parameters", "a dog\nSteps: 5, Sampler: Euler, Seed: 3")))
    assert (rec["prompt"], rec["negativePrompt"], rec["steps"]) == ("a dog", None, 5)


def test_last_prompt_line_with_three_pairs_is_read_as_parameters_as_a1111_does() -> None:
    rec = record(f.png(f.text("parameters", "a portrait\na: b, c: d, e: f")))
    assert rec["prompt"] == "a portrait"


def test_quoted_values_with_escaped_quote_comma_colon_and_newline() -> None:
    line = 'Steps: 20, Model: "my \\"x\\", y", Template: "a: 1\\nb", Seed: 9, Sampler: Euler'
    pairs = parse_pairs(line)
    assert pairs["Model"] == 'my "x", y'
    assert pairs["Template"] == "a: 1\nb"
    assert pairs["Seed"] == "9"
    rec = record(f.png(f.text("parameters", "p\n" + line)))
    assert rec["model"] == 'my "x", y'


def test_sdnext_parameter_line_not_steps_first() -> None:
    line = (
        "Version: aa62f6d, Pipeline: Original, Steps: 25, Sampler: DPM++ 2M, CFG scale: 6, "
        'Seed: 7, Size: 768x512, Operations: , ControlNet 0: "preprocessor: canny, model: '
        'control_canny [e3fe7712]", Hires upscale: 1.3'
    )
    pairs = parse_pairs(line)
    assert pairs["Operations"] == ""
    assert pairs["ControlNet 0"] == "preprocessor: canny, model: control_canny [e3fe7712]"
    assert pairs["Hires upscale"] == "1.3"
    rec = record(f.png(f.text("parameters", "a castle\nNegative prompt: fog\n" + line)))
    assert rec["generator"] == "SD.Next"
    assert (rec["steps"], rec["seed"], rec["width"], rec["height"]) == (25, "7", 768, 512)


def test_forge_version_and_schedule_type() -> None:
    text = "x\nSteps: 4, Sampler: Euler, Schedule type: Simple, Seed: 1, Version: f2.0.1v1.10.1"
    rec = record(f.png(f.text("parameters", text)))
    assert (rec["generator"], rec["scheduler"]) == ("Forge", "Simple")


def test_civitai_unquoted_json_stays_whole() -> None:
    line = (
        "Steps: 30, Sampler: Euler a, CFG scale: 5, Seed: 123, Civitai resources: "
        '[{"type":"checkpoint","modelVersionId":290640},{"type":"lora","weight":1}], '
        'Civitai metadata: {"remixOfId":34798101}, Hashes: {"model":"abc","lora:x":"def"}'
    )
    pairs = parse_pairs(line)
    resources = json.loads(pairs["Civitai resources"])
    assert resources[1] == {"type": "lora", "weight": 1}
    assert json.loads(pairs["Civitai metadata"]) == {"remixOfId": 34798101}
    rec = record(f.png(f.text("parameters", "a fox <lora:x:0.7>\n" + line)))
    assert rec["generator"] == "Civitai"
    assert rec["modelHash"] == "abc"
    assert rec["loras"] == [{"name": "x", "weight": 0.7}]


def test_lora_tags_in_prompt_give_weights() -> None:
    text = "<lora:detail:0.6> a cat <lyco:style:1.2>\nSteps: 2, Seed: 1, Sampler: Euler"
    rec = record(f.png(f.text("parameters", text)))
    assert rec["loras"] == [{"name": "detail", "weight": 0.6}, {"name": "style", "weight": 1.2}]


CJK = "猫, 1girl 🐱\nNegative prompt: 低品質\nSteps: 20, Sampler: Euler, Seed: 5"


@pytest.mark.parametrize(
    "make",
    [
        lambda: f.itxt("parameters", CJK),
        lambda: f.itxt("parameters", CJK, compressed=True),
        lambda: f.ztxt("parameters", CJK.encode("utf-8")),
        lambda: f.raw_text("parameters", CJK.encode("utf-8")),  # UTF-8 stored in tEXt
    ],
    ids=["iTXt", "iTXt-compressed", "zTXt-utf8", "tEXt-utf8"],
)
def test_non_latin1_parameters(make: Any) -> None:
    rec = record(f.png(make()))
    assert (rec["prompt"], rec["negativePrompt"]) == ("猫, 1girl 🐱", "低品質")


def test_invalid_utf8_in_itxt_is_replaced_not_fatal() -> None:
    found = genmeta.extract(f.png(f.itxt("parameters", b"bad \xff\xfe bytes")))
    assert found is not None and "\ufffd" in found.raw["parameters"]


# --- InvokeAI, Fooocus, NovelAI, SwarmUI, Easy Diffusion, Midjourney, Draw Things ---


def test_invokeai_dream() -> None:
    dream = '"a fantasy landscape [ugly, blurry]" -s 50 -S 3357757885 -W 512 -H 640 -C 7.5 -A k_lms'
    rec = record(f.png(f.text("Dream", dream)))
    assert rec["generator"] == "InvokeAI"
    assert (rec["prompt"], rec["negativePrompt"]) == ("a fantasy landscape", "ugly, blurry")
    assert (rec["steps"], rec["seed"], rec["width"], rec["height"]) == (50, "3357757885", 512, 640)
    assert (rec["cfgScale"], rec["sampler"]) == (7.5, "k_lms")


@pytest.mark.parametrize(
    "prompt", ["a red car [rust]", [{"prompt": "a red car [rust]", "weight": 1.0}]]
)
def test_invokeai_sd_metadata(prompt: Any) -> None:
    meta = {
        "model": "stable diffusion",
        "model_weights": "sd-1.5",
        "model_hash": "cc6cb27103",
        "image": {
            "prompt": prompt,
            "steps": 40,
            "cfg_scale": 7.5,
            "seed": 1,
            "width": 512,
            "height": 512,
            "sampler": "k_euler",
        },
    }
    rec = record(f.png(f.text("sd-metadata", json.dumps(meta))))
    assert (rec["prompt"], rec["negativePrompt"], rec["model"]) == ("a red car", "rust", "sd-1.5")


def test_invokeai_v3_and_v5_metadata() -> None:
    v3 = {
        "positive_prompt": "p3",
        "negative_prompt": "n3",
        "seed": 3,
        "steps": 30,
        "cfg_scale": 7,
        "scheduler": "euler",
        "width": 512,
        "height": 512,
        "model": {"model_name": "sd15", "base_model": "sd-1", "model_type": "main"},
        "loras": [{"lora": {"model_name": "l3"}, "weight": 0.4}],
    }
    rec = record(f.png(f.text("invokeai_metadata", json.dumps(v3))))
    assert (rec["model"], rec["scheduler"], rec["loras"]) == (
        "sd15",
        "euler",
        [{"name": "l3", "weight": 0.4}],
    )
    v5 = {
        "positive_prompt": "a robot reading a book",
        "seed": 591741300,
        "cfg_scale": 5.0,
        "steps": 30,
        "scheduler": "dpmpp_2m_sde",
        "width": 1024,
        "height": 1024,
        "model": {
            "key": "db73",
            "hash": "blake3:8967ab",
            "name": "lustifySDXL",
            "base": "sdxl",
            "type": "main",
        },
        "loras": [{"model": {"name": "pixel-art", "hash": "blake3:01"}, "weight": 0.75}],
        "app_version": "5.4.2",
    }
    rec = record(
        f.itxt("invokeai_metadata", json.dumps(v5, ensure_ascii=False)).join(
            [f.SIGNATURE + f.IHDR, f.IDAT + f.IEND]
        )
    )
    assert (rec["model"], rec["modelHash"]) == ("lustifySDXL", "blake3:8967ab")
    assert rec["loras"] == [{"name": "pixel-art", "weight": 0.75}]


FOOOCUS = {
    "prompt": "a lighthouse",
    "negative_prompt": "",
    "steps": 30,
    "guidance_scale": 4,
    "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras",
    "seed": "1234",
    "base_model": "juggernautXL_v8Rundiffusion",
    "base_model_hash": "aeb7e9e6897a1e58b10494bd989d001e3d4bc9b634633cd7b559838f612c2867",
    "resolution": "(1152, 896)",
    "styles": "['Fooocus V2']",
    "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]],
    "version": "Fooocus v2.5.5",
}


def test_fooocus_png_json_scheme() -> None:
    rec = record(
        f.png(f.text("parameters", json.dumps(FOOOCUS)), f.text("fooocus_scheme", "fooocus"))
    )
    assert rec["generator"] == "Fooocus"
    assert (rec["width"], rec["height"]) == (1152, 896)  # parsed from a tuple repr, no eval
    assert (rec["seed"], rec["cfgScale"], rec["model"]) == (
        "1234",
        4.0,
        "juggernautXL_v8Rundiffusion",
    )
    assert rec["negativePrompt"] is None
    assert rec["loras"] == [{"name": "sd_xl_offset_example-lora_1.0.safetensors", "weight": 0.1}]


def test_fooocus_a1111_scheme_and_jpeg_exif() -> None:
    text = (
        "a boat\nNegative prompt: fog\nSteps: 30, Sampler: Euler, Seed: 8, Version: Fooocus v2.5.5"
    )
    rec = record(f.png(f.text("parameters", text), f.text("fooocus_scheme", "a1111")))
    assert (rec["generator"], rec["prompt"]) == ("Fooocus", "a boat")
    # JPEG: UserComment is raw JSON with no charset prefix; MakerNote names the scheme.
    block = f.tiff(
        {0x0131: f.ascii_tag("Fooocus v2.5.5")},
        {0x9286: (f.UNDEFINED, json.dumps(FOOOCUS).encode()), 0x927C: (f.UNDEFINED, b"fooocus")},
        order="<",
    )
    found = genmeta.extract(f.jpeg(f.exif_segment(block)))
    assert found is not None and found.raw["MakerNote"] == "fooocus"
    assert (found.record["generator"], found.record["prompt"]) == ("Fooocus", "a lighthouse")


def test_novelai_png() -> None:
    comment = {
        "prompt": "1girl, solo",
        "steps": 28,
        "height": 1216,
        "width": 832,
        "scale": 5,
        "seed": 4294967295,
        "sampler": "k_euler_ancestral",
        "noise_schedule": "native",
        "uc": None,
        "v4_prompt": {
            "caption": {
                "base_caption": "1girl, solo",
                "char_captions": [
                    {"char_caption": "girl, red hair", "centers": [{"x": 0.5, "y": 0.5}]}
                ],
            }
        },
        "v4_negative_prompt": {"caption": {"base_caption": "lowres"}},
    }
    rec = record(
        f.png(
            f.text("Title", "AI generated image"),
            f.text("Description", "1girl, solo"),
            f.text("Software", "NovelAI"),
            f.text("Source", "Stable Diffusion XL C1E1DE52"),
            f.text("Comment", json.dumps(comment)),
        )
    )
    assert rec["generator"] == "NovelAI"
    assert rec["prompt"] == "1girl, solo\ngirl, red hair"
    assert rec["negativePrompt"] == "lowres"  # uc is null: the v4 negative is used
    assert (rec["seed"], rec["cfgScale"], rec["scheduler"]) == ("4294967295", 5.0, "native")
    assert (rec["model"], rec["modelHash"]) == ("Stable Diffusion XL", "C1E1DE52")
    assert (rec["width"], rec["height"]) == (832, 1216)


def test_novelai_webp_usercomment_json() -> None:
    payload = {
        "Software": "NovelAI",
        "Source": "NovelAI Diffusion V4 F6302A9D",
        "Comment": json.dumps({"prompt": "cat", "uc": "dog", "steps": 23, "seed": 5}),
    }
    block = f.tiff({}, f.user_comment(b"UNICODE\x00" + json.dumps(payload).encode("utf-16-be")))
    rec = record(f.webp(f.riff_chunk(b"EXIF", block), flags=0x08))
    assert (rec["generator"], rec["prompt"], rec["negativePrompt"]) == ("NovelAI", "cat", "dog")


def test_swarmui_parameters_json() -> None:
    params = {
        "sui_image_params": {
            "prompt": "a tree",
            "negativeprompt": "snow",
            "model": "OfficialStableDiffusion/sd_xl_base_1.0",
            "seed": 1742385127,
            "steps": 20,
            "cfgscale": 7,
            "width": 1024,
            "height": 1024,
            "comfyuisampler": "euler",
            "scheduler": "normal",
            "loras": ["a", "b"],
            "loraweights": ["0.5", "1"],
        },
        "sui_extra_data": {"date": "2024-05-01"},
    }
    rec = record(f.png(f.text("parameters", json.dumps(params))))
    assert (rec["generator"], rec["prompt"], rec["sampler"]) == ("SwarmUI", "a tree", "euler")
    assert rec["loras"] == [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 1.0}]


def test_easy_diffusion_plain_prompt_is_not_comfyui() -> None:
    rec = record(
        f.png(
            f.text("prompt", "a plain text prompt"),
            f.text("negative_prompt", "blur"),
            f.text("seed", "77"),
            f.text("num_inference_steps", "25"),
            f.text("guidance_scale", "7.5"),
            f.text("use_stable_diffusion_model", "sd-v1-4"),
            f.text("sampler_name", "plms"),
            f.text("width", "512"),
            f.text("height", "512"),
        )
    )
    assert rec["generator"] == "EasyDiffusion"
    assert (rec["prompt"], rec["steps"], rec["model"]) == ("a plain text prompt", 25, "sd-v1-4")


MJ_XMP_ELEMENT = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
    "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/"
    "trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType></rdf:Description></rdf:RDF>"
    "</x:xmpmeta>"
)
MJ_XMP_ATTRIBUTE = (
    '<rdf:Description Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/'
    'digitalsourcetype/trainedAlgorithmicMedia" xmp:CreatorTool="Midjourney"/>'
)


@pytest.mark.parametrize("xmp", [MJ_XMP_ELEMENT, MJ_XMP_ATTRIBUTE])
def test_midjourney_description_and_iptc_xmp(xmp: str) -> None:
    desc = "a koi pond --ar 2:1 --v 6 Job ID: a7421d2f-b262-44f9-977c-ac23e9c7d3e3"
    rec = record(
        f.png(
            f.text("Description", desc),
            f.text("Author", "someone"),
            f.itxt("XML:com.adobe.xmp", xmp),
        )
    )
    assert rec["generator"] == "Midjourney"
    assert rec["prompt"] == "a koi pond --ar 2:1 --v 6"
    assert rec["model"] == "v 6"
    assert rec["aiGenerated"] is True


def test_iptc_ai_claim_alone_sets_ai_generated() -> None:
    rec = record(f.png(f.itxt("XML:com.adobe.xmp", MJ_XMP_ATTRIBUTE)))
    assert (rec["generator"], rec["aiGenerated"]) == (None, True)


def test_draw_things_xmp_usercomment() -> None:
    comment = json.dumps(
        {
            "c": "a robot",
            "uc": "text",
            "seed": 12,
            "steps": 8,
            "scale": 4,
            "sampler": "DPM++ 2M",
            "model": "flux_1_dev_q8p.ckpt",
            "size": "768x1024",
            "lora": [{"file": "hyper.ckpt", "weight": 1}],
        }
    )
    xmp = (
        '<rdf:Description xmp:CreatorTool="Draw Things"><exif:UserComment><rdf:Alt>'
        f'<rdf:li xml:lang="x-default">{comment.replace("&", "&amp;").replace(chr(34), "&quot;")}'
        "</rdf:li></rdf:Alt></exif:UserComment></rdf:Description>"
    )
    rec = record(f.png(f.itxt("XML:com.adobe.xmp", xmp)))
    assert (rec["generator"], rec["prompt"], rec["width"], rec["height"]) == (
        "DrawThings",
        "a robot",
        768,
        1024,
    )
    assert rec["loras"] == [{"name": "hyper.ckpt", "weight": 1.0}]


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_fooocus_exif_as_pillow_writes_it(fmt: str) -> None:
    from PIL import Image

    exif = Image.Exif()  # as Fooocus' get_exif(): a str UserComment in IFD0, no prefix
    exif[0x9286] = json.dumps({**FOOOCUS, "prompt": "café lighthouse"})
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = "fooocus"
    rec = record(f.pillow_bytes(f.pillow_image(), fmt, exif=exif.tobytes()))
    assert (rec["generator"], rec["prompt"], rec["width"]) == ("Fooocus", "café lighthouse", 1152)


def test_pillow_pnginfo_with_itxt_and_ztxt() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "猫\nSteps: 2, Seed: 3, Sampler: Euler")  # becomes iTXt
    info.add_text("prompt", json.dumps(f.COMFY_GRAPH), zip=True)  # becomes zTXt
    rec = record(f.pillow_bytes(f.pillow_image(), "PNG", pnginfo=info))
    assert (rec["generator"], rec["prompt"], rec["seed"]) == ("ComfyUI", "猫", "3")


def test_a1111_gif_comment() -> None:
    image = f.pillow_image().convert("P")
    data = f.pillow_bytes(image, "GIF", comment=f.A1111_TEXT.encode())
    rec = record(data)
    assert (rec["generator"], rec["prompt"], rec["seed"]) == ("A1111", 'a cat, "hat"', "42")
