"""genmeta and ComfyUI: API graphs, UI workflows, and where ComfyUI writes them outside PNG."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dreamflare_store import genmeta
from tests import genmeta_fixtures as f


def record(data: bytes) -> dict[str, Any]:
    found = genmeta.extract(data)
    assert found is not None
    assert tuple(found.record) == genmeta.RECORD_KEYS
    json.dumps(found.to_dict(), allow_nan=False)
    return found.record


def graph_record(graph: dict[str, Any], **extra: str) -> dict[str, Any]:
    chunks = [f.text("prompt", json.dumps(graph))]
    chunks += [f.text(k, v) for k, v in extra.items()]
    return record(f.png(*chunks))


def test_comfyui_default_graph_with_workflow() -> None:
    rec = graph_record(f.COMFY_GRAPH, workflow=json.dumps(f.WORKFLOW))
    assert rec["generator"] == "ComfyUI"
    assert rec["prompt"] == "beautiful scenery nature glass bottle landscape"
    assert rec["negativePrompt"] == "text, watermark"
    assert (rec["seed"], rec["steps"], rec["cfgScale"]) == ("156680208700286", 20, 8.0)
    assert (rec["sampler"], rec["scheduler"]) == ("euler", "normal")
    assert rec["model"] == "v1-5-pruned-emaonly.safetensors"
    assert (rec["width"], rec["height"]) == (512, 768)


def test_comfyui_prompt_only_in_ztxt() -> None:
    rec = record(f.png(f.ztxt("prompt", json.dumps(f.COMFY_GRAPH))))
    assert rec["seed"] == "156680208700286"


def test_comfyui_two_samplers_reports_the_first_pass() -> None:
    graph = f.comfy_graph(
        **{
            "10": {
                "class_type": "LatentUpscale",
                "inputs": {"samples": ["3", 0], "width": 1024, "height": 1536},
            },
            "11": {
                "class_type": "KSampler",
                "inputs": {
                    "seed": 1,
                    "steps": 10,
                    "cfg": 4,
                    "sampler_name": "dpmpp_2m",
                    "scheduler": "karras",
                    "denoise": 0.5,
                    "model": ["4", 0],
                    "positive": ["6", 0],
                    "negative": ["7", 0],
                    "latent_image": ["10", 0],
                },
            },
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
        }
    )
    # The hires pass is listed first, so dict order alone would pick it.
    graph = {"11": graph.pop("11"), **graph}
    rec = graph_record(graph)
    assert (rec["seed"], rec["steps"], rec["sampler"]) == ("156680208700286", 20, "euler")


def test_comfyui_ksampler_advanced_noise_seed_and_sdxl_text() -> None:
    graph = f.comfy_graph(
        **{
            "3": {
                "class_type": "KSamplerAdvanced",
                "inputs": {
                    "noise_seed": 99,
                    "steps": 30,
                    "cfg": 6.5,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "model": ["4", 0],
                    "positive": ["6", 0],
                    "negative": ["7", 0],
                    "latent_image": ["5", 0],
                },
            },
            "6": {
                "class_type": "CLIPTextEncodeSDXL",
                "inputs": {"text_g": "global text", "text_l": "local text", "clip": ["4", 1]},
            },
        }
    )
    rec = graph_record(graph)
    assert (rec["seed"], rec["steps"], rec["cfgScale"]) == ("99", 30, 6.5)
    assert rec["prompt"] == "global text"


def test_comfyui_sampler_custom_advanced_chain_with_flux_guider() -> None:
    graph = {
        "13": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["25", 0],
                "guider": ["22", 0],
                "sampler": ["16", 0],
                "sigmas": ["17", 0],
                "latent_image": ["27", 0],
            },
        },
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 18446744073709551615}},
        "22": {
            "class_type": "CFGGuider",
            "inputs": {
                "model": ["30", 0],
                "positive": ["26", 0],
                "negative": ["33", 0],
                "cfg": 3.5,
            },
        },
        "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "6": {
            "class_type": "CLIPTextEncodeFlux",
            "inputs": {"clip_l": "short", "t5xxl": "a long flux prompt", "clip": ["11", 0]},
        },
        "33": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["11", 0]}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {
            "class_type": "BasicScheduler",
            "inputs": {"scheduler": "simple", "steps": 28, "denoise": 1, "model": ["30", 0]},
        },
        "30": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
    }
    rec = graph_record(graph)
    assert rec["seed"] == "18446744073709551615"  # 2**64-1, kept exactly as a string
    assert (rec["steps"], rec["cfgScale"], rec["sampler"], rec["scheduler"]) == (
        28,
        3.5,
        "euler",
        "simple",
    )
    assert rec["prompt"] == "a long flux prompt"
    assert rec["negativePrompt"] is None
    assert rec["model"] == "flux1-dev.safetensors"


def test_comfyui_lora_chain_linked_text_and_compound_ids() -> None:
    graph = f.comfy_graph(
        **{
            "3": {
                "class_type": "KSampler",
                "inputs": {**f.COMFY_GRAPH["3"]["inputs"], "model": ["54:73", 0]},
            },
            "54:73": {
                "class_type": "LoraLoader",
                "inputs": {
                    "lora_name": "detail.safetensors",
                    "strength_model": 0.8,
                    "strength_clip": 1,
                    "model": ["54:72", 0],
                    "clip": ["4", 1],
                },
            },
            "54:72": {
                "class_type": "LoraLoaderModelOnly",
                "inputs": {
                    "lora_name": "style.v2.safetensors",
                    "strength_model": 0.5,
                    "model": ["4", 0],
                },
            },
            "6": {
                "class_type": "CLIPTextEncode",
                "inputs": {"text": ["12.0", 0], "clip": ["4", 1]},
            },
            "12.0": {
                "class_type": "PrimitiveStringMultiline",
                "inputs": {"value": "linked prompt"},
            },
        }
    )
    rec = graph_record(graph)
    assert rec["prompt"] == "linked prompt"
    assert rec["model"] == "v1-5-pruned-emaonly.safetensors"
    assert rec["loras"] == [
        {"name": "detail.safetensors", "weight": 0.8},
        {"name": "style.v2.safetensors", "weight": 0.5},
    ]


def test_comfyui_link_cycle_ends() -> None:
    graph = f.comfy_graph(
        **{
            "3": {
                "class_type": "KSampler",
                "inputs": {
                    **f.COMFY_GRAPH["3"]["inputs"],
                    "model": ["20", 0],
                    "positive": ["21", 0],
                },
            },
            "20": {"class_type": "LoraLoader", "inputs": {"lora_name": "a", "model": ["20", 0]}},
            "21": {
                "class_type": "ConditioningCombine",
                "inputs": {"conditioning_1": ["22", 0], "conditioning_2": ["21", 0]},
            },
            "22": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["21", 0]}},
        }
    )
    rec = graph_record(graph)
    assert rec["generator"] == "ComfyUI" and rec["model"] is None and rec["prompt"] is None
    assert rec["seed"] == "156680208700286"


def test_comfyui_workflow_with_nan_is_kept_raw_and_prompt_still_read() -> None:
    workflow = '{"nodes": [{"id": 1, "widgets_values": [NaN]}], "links": []}'
    found = genmeta.extract(
        f.png(f.text("prompt", json.dumps(f.COMFY_GRAPH)), f.text("workflow", workflow))
    )
    assert found is not None and found.raw["workflow"] == workflow
    assert found.record["seed"] == "156680208700286"


def test_comfyui_workflow_only_is_still_comfyui() -> None:
    rec = record(f.png(f.text("workflow", json.dumps(f.WORKFLOW))))
    assert rec["generator"] == "ComfyUI" and rec["prompt"] is None


def test_prompt_saver_a1111_text_beside_a_graph() -> None:
    rec = record(
        f.png(
            f.text("parameters", f.A1111_TEXT.replace(", Version: v1.10.1", "")),
            f.text("prompt", json.dumps(f.COMFY_GRAPH)),
        )
    )
    assert rec["generator"] == "ComfyUI"
    assert rec["prompt"] == 'a cat, "hat"' and rec["seed"] == "42"  # flat fields from text


def test_comfyui_animated_webp_exif_keys() -> None:
    block = f.tiff(
        {
            0x010F: f.ascii_tag("workflow:" + json.dumps(f.WORKFLOW)),
            0x0110: f.ascii_tag("prompt:" + json.dumps(f.COMFY_GRAPH)),
            0x010E: f.ascii_tag('extra:{"note": "third key"}'),
        },
        order="<",
    )
    found = genmeta.extract(f.webp(f.riff_chunk(b"EXIF", block), flags=0x08))
    assert found is not None
    assert found.record["generator"] == "ComfyUI"
    assert found.record["seed"] == "156680208700286"
    assert json.loads(found.raw["workflow"]) == f.WORKFLOW
    assert json.loads(found.raw["extra"]) == {"note": "third key"}


def test_comfyui_mp4_mdta_keys() -> None:
    meta = f.mdta_meta({"prompt": json.dumps(f.COMFY_GRAPH), "workflow": json.dumps(f.WORKFLOW)})
    for data in (f.mp4(moov_extra=meta), f.mp4(moov_extra=f.box(b"udta", meta), mdat_first=True)):
        found = genmeta.extract(data)
        assert found is not None and found.record["seed"] == "156680208700286"
        assert found.record["width"] == 512  # from the graph, not the track header
        assert "workflow" in found.raw


@pytest.mark.parametrize("double_encoded", [False, True])
def test_videohelpersuite_comment(double_encoded: bool) -> None:
    inner: Any = json.dumps(f.COMFY_GRAPH) if double_encoded else f.COMFY_GRAPH
    comment = json.dumps({"prompt": inner, "workflow": f.WORKFLOW})
    found = genmeta.extract(f.mp4(moov_extra=f.itunes_udta(comment)))
    assert found is not None
    assert found.record["generator"] == "ComfyUI"
    assert found.record["negativePrompt"] == "text, watermark"
    assert (found.record["width"], found.record["height"]) == (512, 768)


@pytest.mark.parametrize("unknown_sizes", [False, True])
def test_videohelpersuite_webm_comment_tag(unknown_sizes: bool) -> None:
    comment = json.dumps({"prompt": json.dumps(f.COMFY_GRAPH), "workflow": f.WORKFLOW})
    data = f.webm({"COMMENT": comment, "ENCODER": "Lavf61.1.100"}, unknown_sizes)
    found = genmeta.extract(data)
    assert found is not None and found.raw["encoder"] == "Lavf61.1.100"
    assert found.record["generator"] == "ComfyUI"
    assert found.record["seed"] == "156680208700286"


def test_webm_size_from_the_track() -> None:
    found = genmeta.extract(f.webm({"TITLE": "x"}))
    assert found is not None and (found.record["width"], found.record["height"]) == (640, 360)


def test_comfyui_ui_workflow_alone_is_walked_by_widget_positions() -> None:
    nodes = [
        {
            "id": 3,
            "type": "KSampler",
            "mode": 0,
            "inputs": [
                {"name": "model", "link": 1},
                {"name": "positive", "link": 4},
                {"name": "negative", "link": 6},
                {"name": "latent_image", "link": 2},
                {"name": "seed", "widget": {"name": "seed"}, "link": 9},
            ],
            "widgets_values": [1, "randomize", 25, 6.5, "euler", "karras", 1],
        },
        {
            "id": 4,
            "type": "CheckpointLoaderSimple",
            "mode": 0,
            "inputs": [],
            "widgets_values": ["sdxl.safetensors"],
        },
        {"id": 5, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [832, 1216, 1]},
        {
            "id": 6,
            "type": "CLIPTextEncode",
            "mode": 0,
            "inputs": [{"name": "clip", "link": 3}],
            "widgets_values": ["a harbour at night"],
        },
        {
            "id": 7,
            "type": "CLIPTextEncode",
            "mode": 0,
            "inputs": [{"name": "clip", "link": 5}],
            "widgets_values": ["blurry"],
        },
        {"id": 8, "type": "CLIPTextEncode", "mode": 4, "widgets_values": ["bypassed"]},
        {"id": 10, "type": "PrimitiveNode", "mode": 0, "widgets_values": [987654321, "fixed"]},
    ]
    links = [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 5, 0, 3, 3, "LATENT"],
        [3, 4, 1, 6, 0, "CLIP"],
        [4, 6, 0, 3, 1, "CONDITIONING"],
        [5, 4, 1, 7, 0, "CLIP"],
        [6, 7, 0, 3, 2, "CONDITIONING"],
        [9, 10, 0, 3, 4, "INT"],
    ]
    workflow = {"last_node_id": 10, "nodes": nodes, "links": links, "version": 0.4}
    rec = record(f.png(f.text("workflow", json.dumps(workflow))))
    assert rec["generator"] == "ComfyUI"
    assert (rec["prompt"], rec["negativePrompt"]) == ("a harbour at night", "blurry")
    assert (rec["seed"], rec["steps"], rec["cfgScale"]) == ("987654321", 25, 6.5)
    assert (rec["sampler"], rec["scheduler"], rec["model"]) == (
        "euler",
        "karras",
        "sdxl.safetensors",
    )
    assert (rec["width"], rec["height"]) == (832, 1216)
