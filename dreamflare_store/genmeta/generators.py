"""Recognise which generator wrote the raw texts a walker found, and read its fields.

Precedence, first match wins (a file may carry several generators' keys): InvokeAI keys;
NovelAI (``Software`` "NovelAI" with a ``Comment``); Fooocus (its scheme key, or its
Software/MakerNote in EXIF); ``parameters``/UserComment JSON (SwarmUI, Fooocus, Easy
Diffusion); A1111-style infotext; a ComfyUI API graph in ``prompt`` (PNG, WebP EXIF, MP4
keys, or inside a video's ``comment`` JSON); Easy Diffusion's plain-text ``prompt``;
Midjourney's ``Description``; Draw Things' XMP. A file with A1111 text *and* a ComfyUI
graph (the "prompt saver" nodes) takes its fields from the text.

Fields are returned loosely typed (numbers may still be strings); :mod:`.record` coerces
and caps them.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from dreamflare_store.genmeta.comfy import graph_from_workflow, is_api_graph, parse_graph
from dreamflare_store.genmeta.infotext import parse_infotext
from dreamflare_store.genmeta.source import Found

__all__ = ["recognise"]

_NOVELAI_SOURCE = re.compile(r"^(.*?)\s+([A-Z0-9]{6,})$")
_DREAM_FLAG = re.compile(r"-(\w)\s+(\S+)")
_RESOLUTION = re.compile(r"(\d+)\D+(\d+)")
_MJ_VERSION = re.compile(r"--(v|niji)\s+(\S+)")


class _Texts:
    """The raw texts, without the truncated ones: a text cut at the cap is kept raw but
    never interpreted (its last line or its JSON would be a misleading fragment). JSON is
    parsed lazily, once per key."""

    def __init__(self, found: Found) -> None:
        self.found = found
        self.texts = found.texts
        self._json: dict[str, Any] = {}

    def get(self, key: str) -> str | None:
        """The raw text of ``key``, or None if absent or truncated."""
        return None if key in self.found.truncated else self.texts.get(key)

    def json(self, key: str) -> Any:
        """The parsed JSON of ``key``'s text, or None if absent, truncated or not JSON."""
        if key not in self._json:
            self._json[key] = _loads(self.texts.get(key), key in self.found.truncated)
        return self._json[key]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _loads(text: str | None, truncated: bool = False) -> Any:
    if text is None or truncated or not text.lstrip().startswith(("{", "[", '"')):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def recognise(found: Found) -> dict[str, Any]:
    """Return the record fields the raw texts give, with ``generator`` (None if unknown)."""
    texts = _Texts(found)
    only = found.texts.get("parameters") if len(found.texts) == 1 else None
    if only and not found.truncated and not only.lstrip().startswith(("{", "[", '"')):
        # A1111's one text chunk, the common case: every reader before _a1111 would pass
        # (none of their keys is here, and the text is not JSON), and it cannot refuse it.
        return _a1111(texts) or {"generator": None}
    _merge_novelai_exif(texts)
    for reader in (
        _invokeai,
        _novelai,
        _fooocus,
        _json_parameters,
        _a1111,
        _comfyui,
        _easy_diffusion,
        _midjourney,
        _draw_things,
    ):
        fields = reader(texts)
        if fields is not None:
            return fields
    return {"generator": None}


def _merge_novelai_exif(texts: _Texts) -> None:
    """NovelAI WebP/JPEG keep the PNG keys as one JSON object in UserComment."""
    value = texts.json("UserComment")
    if isinstance(value, dict) and "Comment" in value and "Software" in value:
        for key in ("Software", "Comment", "Description", "Source"):
            if isinstance(value.get(key), str) and key not in texts.texts:
                texts.found.add_text(key, value[key])


def _params(texts: _Texts) -> str | None:
    # A GIF from A1111 carries its text as the comment; a comment counts as infotext only
    # with three parameters, like UserComment.
    return texts.get("parameters") or texts.get("UserComment") or texts.get("comment")


def _params_json(texts: _Texts) -> Any:
    return texts.json("parameters") if texts.get("parameters") else texts.json("UserComment")


# --- InvokeAI ---


def _invokeai(texts: _Texts) -> dict[str, Any] | None:
    meta = texts.json("invokeai_metadata")
    if isinstance(meta, dict):
        model = _dict(meta.get("model"))
        loras = []
        for item in _list(meta.get("loras")):
            if isinstance(item, dict):
                info = _dict(item.get("model") or item.get("lora"))
                name = info.get("name") or info.get("model_name")
                loras.append({"name": name, "weight": item.get("weight")})
        return {
            "generator": "InvokeAI",
            "prompt": meta.get("positive_prompt"),
            "negativePrompt": meta.get("negative_prompt"),
            "seed": meta.get("seed"),
            "steps": meta.get("steps"),
            "cfgScale": meta.get("cfg_scale"),
            "scheduler": meta.get("scheduler"),
            "model": model.get("name") or model.get("model_name"),
            "modelHash": model.get("hash"),
            "loras": loras,
            "width": meta.get("width"),
            "height": meta.get("height"),
        }
    legacy = texts.json("sd-metadata")
    if isinstance(legacy, dict):
        image = _dict(legacy.get("image"))
        prompt = image.get("prompt")
        if isinstance(prompt, list):
            prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
        fields = _dream_prompt(prompt if isinstance(prompt, str) else "")
        fields.update(
            generator="InvokeAI",
            seed=image.get("seed"),
            steps=image.get("steps"),
            cfgScale=image.get("cfg_scale"),
            sampler=image.get("sampler"),
            model=legacy.get("model_weights"),
            modelHash=legacy.get("model_hash"),
            width=image.get("width"),
            height=image.get("height"),
        )
        return fields
    dream = texts.get("Dream")
    return _dream(dream) if dream else None


def _dream_prompt(prompt: str) -> dict[str, Any]:
    """InvokeAI 2 writes the negative prompt inside the prompt, in square brackets."""
    negative = [n.strip() for n in re.findall(r"\[([^\[\]]*)\]", prompt)]
    positive = re.sub(r"\[[^\[\]]*\]", "", prompt).strip()
    return {"prompt": positive or None, "negativePrompt": ", ".join(negative) or None}


def _dream(dream: str) -> dict[str, Any]:
    quoted = re.match(r'^\s*"((?:[^"\\]|\\.)*)"(.*)$', dream, re.DOTALL)
    if quoted:
        prompt, flags = quoted.group(1).replace('\\"', '"'), quoted.group(2)
    else:
        prompt, _, rest = dream.partition(" -")
        flags = "-" + rest
    fields = _dream_prompt(prompt)
    options = dict(_DREAM_FLAG.findall(flags))
    fields.update(
        generator="InvokeAI",
        steps=options.get("s"),
        seed=options.get("S"),
        width=options.get("W"),
        height=options.get("H"),
        cfgScale=options.get("C"),
        sampler=options.get("A"),
    )
    return fields


# --- NovelAI ---


def _novelai(texts: _Texts) -> dict[str, Any] | None:
    if not (texts.get("Software") or "").startswith("NovelAI"):
        return None
    comment = texts.json("Comment")
    comment = comment if isinstance(comment, dict) else {}
    prompt = comment.get("prompt") or texts.get("Description")
    v4 = comment.get("v4_prompt")
    caption = v4.get("caption") if isinstance(v4, dict) else None
    if isinstance(caption, dict):
        prompt = prompt or caption.get("base_caption")
        for char in _list(caption.get("char_captions")):
            if isinstance(char, dict) and isinstance(char.get("char_caption"), str):
                prompt = f"{prompt or ''}\n{char['char_caption']}".strip()
    negative = comment.get("uc")
    v4_negative = comment.get("v4_negative_prompt")
    if negative is None and isinstance(v4_negative, dict):
        caption = v4_negative.get("caption")
        negative = caption.get("base_caption") if isinstance(caption, dict) else None
    # A short slice: the lazy pattern would be quadratic over a long run of spaces.
    source = _NOVELAI_SOURCE.match((texts.get("Source") or "")[:256])
    return {
        "generator": "NovelAI",
        "prompt": prompt,
        "negativePrompt": negative,
        "seed": comment.get("seed"),
        "steps": comment.get("steps"),
        "cfgScale": comment.get("scale"),
        "sampler": comment.get("sampler"),
        "scheduler": comment.get("noise_schedule"),
        "model": source.group(1) if source else texts.get("Source"),
        "modelHash": source.group(2) if source else None,
        "width": comment.get("width"),
        "height": comment.get("height"),
    }


# --- Fooocus, SwarmUI, Easy Diffusion (JSON in parameters / UserComment) ---


def _fooocus(texts: _Texts) -> dict[str, Any] | None:
    scheme = texts.get("fooocus_scheme") or ""
    software = texts.get("Software") or ""
    if not scheme and not software.startswith("Fooocus"):
        return None
    value = _params_json(texts)
    if isinstance(value, dict):
        return _fooocus_json(value)
    text = _params(texts)
    if text:
        fields = parse_infotext(text)
        fields["generator"] = "Fooocus"
        return fields
    return {"generator": "Fooocus"}


def _fooocus_json(value: dict[str, Any]) -> dict[str, Any]:
    loras = []
    for item in _list(value.get("loras")):
        if isinstance(item, list) and item:
            loras.append({"name": item[0], "weight": item[1] if len(item) > 1 else None})
    size = _size(value.get("resolution"))  # a tuple repr such as "(1152, 896)": never eval
    return {
        "generator": "Fooocus",
        "prompt": value.get("prompt"),
        "negativePrompt": value.get("negative_prompt"),
        "seed": value.get("seed"),
        "steps": value.get("steps"),
        "cfgScale": value.get("guidance_scale"),
        "sampler": value.get("sampler"),
        "scheduler": value.get("scheduler"),
        "model": value.get("base_model"),
        "modelHash": value.get("base_model_hash"),
        "loras": loras,
        "width": size[0],
        "height": size[1],
    }


def _size(value: Any) -> tuple[int | None, int | None]:
    """Two integers from "(1152, 896)" or "768x1024"; a short slice keeps the search linear."""
    match = _RESOLUTION.search(str(value)[:64]) if value is not None else None
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def _json_parameters(texts: _Texts) -> dict[str, Any] | None:
    value = _params_json(texts)
    if not isinstance(value, dict):
        return None
    swarm = value.get("sui_image_params")
    if isinstance(swarm, dict):
        names, weights = _list(swarm.get("loras")), _list(swarm.get("loraweights"))
        loras = [
            {"name": name, "weight": weights[k] if k < len(weights) else None}
            for k, name in enumerate(names)
        ]
        return {
            "generator": "SwarmUI",
            "prompt": swarm.get("prompt"),
            "negativePrompt": swarm.get("negativeprompt"),
            "seed": swarm.get("seed"),
            "steps": swarm.get("steps"),
            "cfgScale": swarm.get("cfgscale"),
            "sampler": swarm.get("comfyuisampler")
            or swarm.get("autowebuisampler")
            or swarm.get("sampler"),
            "scheduler": swarm.get("scheduler") or swarm.get("comfyuischeduler"),
            "model": swarm.get("model"),
            "loras": loras,
            "width": swarm.get("width"),
            "height": swarm.get("height"),
        }
    if "base_model" in value and "prompt" in value:
        return _fooocus_json(value)
    if "num_inference_steps" in value:
        return _easy_fields(value.get, "EasyDiffusion")
    return None


def _easy_fields(get: Any, generator: str) -> dict[str, Any]:
    return {
        "generator": generator,
        "prompt": get("prompt"),
        "negativePrompt": get("negative_prompt"),
        "seed": get("seed"),
        "steps": get("num_inference_steps"),
        "cfgScale": get("guidance_scale"),
        "sampler": get("sampler_name"),
        "model": get("use_stable_diffusion_model"),
        "width": get("width"),
        "height": get("height"),
    }


def _easy_diffusion(texts: _Texts) -> dict[str, Any] | None:
    prompt = texts.get("prompt")
    if prompt is None or prompt.lstrip().startswith("{"):
        return None  # a JSON "prompt" is ComfyUI's, even when it did not parse
    if texts.get("num_inference_steps") is None and texts.get("negative_prompt") is None:
        return None
    return _easy_fields(texts.get, "EasyDiffusion")


# --- A1111 family, ComfyUI ---


def _a1111(texts: _Texts) -> dict[str, Any] | None:
    text = _params(texts)
    if not text or text.lstrip().startswith("{"):
        return None
    fields = parse_infotext(text)
    if fields.pop("pairs") < 3 and "parameters" not in texts.texts:
        return None  # a free-text UserComment is not infotext
    if fields["generator"] == "A1111" and _comfy_graph(texts) is not None:
        fields["generator"] = "ComfyUI"  # a ComfyUI node wrote A1111 text beside its graph
    return fields


def _comfy_graph(texts: _Texts) -> dict[str, Any] | None:
    graph = texts.json("prompt")
    if is_api_graph(graph):
        return graph
    comment = texts.json("comment")
    if isinstance(comment, dict):
        inner = comment.get("prompt")
        if isinstance(inner, str):  # newer VideoHelperSuite encodes it twice
            inner = _loads(inner)
        if is_api_graph(inner):
            return inner
    return None


def _comfyui(texts: _Texts) -> dict[str, Any] | None:
    graph = _comfy_graph(texts)
    if graph is not None:
        return parse_graph(graph, texts.found.limits.max_nodes)
    ui_graph = graph_from_workflow(texts.json("workflow"), texts.found.limits.max_nodes)
    if ui_graph:
        return parse_graph(ui_graph, texts.found.limits.max_nodes)
    workflow = texts.texts.get("workflow") or ""  # truncated or not: only its shape counts
    prompt = texts.texts.get("prompt") or ""
    if workflow.lstrip().startswith("{") or prompt.lstrip().startswith("{"):
        return {"generator": "ComfyUI"}  # a UI graph only, or a graph too large to parse
    return None


# --- Midjourney, Draw Things ---


def _midjourney(texts: _Texts) -> dict[str, Any] | None:
    description = texts.get("Description") or texts.get("ImageDescription") or ""
    if "Job ID:" not in description and not re.search(r"--(?:v|ar|niji)\s", description):
        return None
    version = _MJ_VERSION.search(description)
    job = description.rfind("Job ID:")
    return {
        "generator": "Midjourney",
        "prompt": (description[:job] if job >= 0 else description).strip() or None,
        "model": f"{version.group(1)} {version.group(2)}" if version else None,
    }


def _xmp_user_comment(xmp: str) -> str:
    """The first ``rdf:li`` text inside ``exif:UserComment``, found with str.find (linear)."""
    start = xmp.find("<exif:UserComment")
    item = xmp.find("<rdf:li", start) if start >= 0 else -1
    opened = xmp.find(">", item) if item >= 0 else -1
    closed = xmp.find("</rdf:li>", opened) if opened >= 0 else -1
    return xmp[opened + 1 : closed] if closed >= 0 else ""


def _draw_things(texts: _Texts) -> dict[str, Any] | None:
    xmp = texts.get("XMP") or ""
    if "Draw Things" not in xmp:
        return None
    value = _loads(html.unescape(_xmp_user_comment(xmp)))
    if not isinstance(value, dict):
        return {"generator": "DrawThings"}
    size = _size(value.get("size"))
    loras = [
        {"name": item.get("file") or item.get("model"), "weight": item.get("weight")}
        for item in _list(value.get("lora"))
        if isinstance(item, dict)
    ]
    return {
        "generator": "DrawThings",
        "prompt": value.get("c"),
        "negativePrompt": value.get("uc"),
        "seed": value.get("seed"),
        "steps": value.get("steps"),
        "cfgScale": value.get("scale"),
        "sampler": value.get("sampler"),
        "model": value.get("model"),
        "loras": loras,
        "width": size[0],
        "height": size[1],
    }
