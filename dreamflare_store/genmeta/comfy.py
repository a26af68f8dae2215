"""ComfyUI API graphs ("prompt"): walk from the sampler to its prompts, model and LoRAs.

A graph maps node ids (strings, possibly compound like "54:73") to ``{"class_type",
"inputs"}``; an input that is a two-item list ``[node_id, output]`` is a link. The walk
starts from the *first pass* sampler feeding the saved image (a hires or refiner pass
reuses its prompts but not its seed and steps), follows ``positive``/``negative``
through conditioning nodes to the text encoders, and ``model`` through LoRA loaders to the
checkpoint. Every walk shares one visit budget and a visited set, so a cycle or a huge
graph ends quickly with what was found.
"""

from __future__ import annotations

from typing import Any, TypeGuard

__all__ = ["graph_from_workflow", "is_api_graph", "parse_graph"]

_SAMPLERS = frozenset(
    {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
    | {"KSampler (Efficient)", "KSampler Adv. (Efficient)", "KSamplerSDXLAdvanced"}
)
_TEXT_KEYS = ("text", "text_g", "t5xxl", "clip_l", "text_l", "prompt", "string", "value")
_MAX_TEXTS = 8


def is_api_graph(value: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a parsed JSON value is an API graph: nodes with a ``class_type``."""
    if not isinstance(value, dict) or not value:
        return False
    sample = [v for _, v in zip(range(8), value.values(), strict=False)]
    return all(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in sample)


class _Walk:
    """Walks over one graph, sharing a budget of link follows so the total stays bounded."""

    def __init__(self, graph: dict[str, Any], budget: int) -> None:
        self.graph = graph
        self.budget = budget

    def node(self, value: Any) -> tuple[str, dict[str, Any]] | None:
        """Follow a link value to its node; None for a literal, a dangling link or no budget."""
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int)):
            return None
        self.budget -= 1
        node_id = str(value[0])
        node = self.graph.get(node_id)
        if self.budget < 0 or not isinstance(node, dict):
            return None
        inputs = node.get("inputs")
        return node_id, inputs if isinstance(inputs, dict) else {}

    def scalar(self, inputs: dict[str, Any], *names: str) -> Any:
        """The first of ``names`` set in ``inputs``, following a link to a value node."""
        seen: set[str] = set()
        for name in names:
            value = inputs.get(name)
            hops = 0
            while (linked := self.node(value)) is not None and hops < 16:
                node_id, upstream = linked
                if node_id in seen:
                    return None
                seen.add(node_id)
                hops += 1
                value = next(
                    (
                        upstream[k]
                        for k in (name, *_TEXT_KEYS, "seed", "noise_seed", "int", "float", "number")
                        if k in upstream
                    ),
                    None,
                )
            if value is not None and not isinstance(value, list | dict):
                return value
        return None

    def texts(self, start: Any, side: str) -> list[str]:
        """Prompt texts upstream of a conditioning link, through combine/control nodes."""
        found: list[str] = []
        seen: set[str] = set()
        stack = [start]
        while stack and len(found) < _MAX_TEXTS:
            linked = self.node(stack.pop())
            if linked is None or linked[0] in seen:
                continue
            node_id, inputs = linked
            seen.add(node_id)
            text = next((self.scalar(inputs, k) for k in _TEXT_KEYS[:5] if k in inputs), None)
            if isinstance(text, str):
                if text.strip() and text not in found:
                    found.append(text)
                continue
            if side in inputs:
                stack.append(inputs[side])
                continue
            links = [k for k in sorted(inputs, reverse=True) if "conditioning" in k]
            stack.extend(inputs[k] for k in links)
        return found

    def model(self, start: Any) -> tuple[str | None, list[dict[str, Any]]]:
        """The checkpoint (or UNet) name upstream of a model link, and LoRAs on the way."""
        loras: list[dict[str, Any]] = []
        seen: set[str] = set()
        value = start
        while (linked := self.node(value)) is not None and linked[0] not in seen:
            node_id, inputs = linked
            seen.add(node_id)
            for key in ("ckpt_name", "unet_name", "model_name", "base_ckpt_name"):
                if isinstance(inputs.get(key), str):
                    return inputs[key], loras
            if isinstance(inputs.get("lora_name"), str):
                weight = self.scalar(inputs, "strength_model", "strength", "lora_strength")
                loras.append({"name": inputs["lora_name"], "weight": weight})
            value = inputs.get("model")
        return None, loras


def _inputs(node: Any) -> dict[str, Any]:
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _samplers(graph: dict[str, Any]) -> list[str]:
    found = []
    for node_id, node in graph.items():
        if not isinstance(node, dict):
            continue
        inputs = _inputs(node)
        duck = {"steps", "cfg", "sampler_name"} <= inputs.keys()
        custom = {"noise", "guider", "sampler", "sigmas"} <= inputs.keys()
        if node.get("class_type") in _SAMPLERS or duck or custom:
            found.append(node_id)
    return found


def _first_pass(walk: _Walk, samplers: list[str]) -> str:
    """The sampler no other sampler feeds: the first pass of a hires or refiner chain."""
    fed: set[str] = set()
    known = set(samplers)
    for node_id in samplers:
        latent = _inputs(walk.graph[node_id]).get("latent_image")
        seen: set[str] = set()
        while (linked := walk.node(latent)) is not None and linked[0] not in seen:
            seen.add(linked[0])
            if linked[0] in known:
                fed.add(node_id)  # another sampler's output is this one's input
                break
            latent = next(
                (
                    linked[1][k]
                    for k in ("samples", "latent", "latent_image", "pixels", "image")
                    if k in linked[1]
                ),
                None,
            )
    firsts = [s for s in samplers if s not in fed] or samplers
    return firsts[0]


def parse_graph(graph: dict[str, Any], budget: int) -> dict[str, Any]:
    """Return record fields read from an API graph (``generator`` is always "ComfyUI")."""
    out: dict[str, Any] = {"generator": "ComfyUI"}
    walk = _Walk(graph, budget)
    samplers = _samplers(graph)
    if not samplers:
        return out
    inputs = _inputs(graph[_first_pass(walk, samplers)])
    guider = walk.node(inputs.get("guider"))
    guider_inputs = guider[1] if guider else {}
    sigmas = walk.node(inputs.get("sigmas"))
    sigma_inputs = sigmas[1] if sigmas else {}
    select = walk.node(inputs.get("sampler"))
    noise = walk.node(inputs.get("noise"))
    out["seed"] = walk.scalar(inputs, "seed", "noise_seed")
    if out["seed"] is None and noise:
        out["seed"] = walk.scalar(noise[1], "noise_seed", "seed")
    out["steps"] = walk.scalar(inputs, "steps") or walk.scalar(sigma_inputs, "steps")
    out["cfgScale"] = walk.scalar(inputs, "cfg") or walk.scalar(guider_inputs, "cfg")
    out["sampler"] = walk.scalar(inputs, "sampler_name")
    if out["sampler"] is None and select:
        out["sampler"] = walk.scalar(select[1], "sampler_name")
    out["scheduler"] = walk.scalar(inputs, "scheduler") or walk.scalar(sigma_inputs, "scheduler")
    conditioning = inputs if "positive" in inputs else guider_inputs
    positive_link = conditioning.get("positive", conditioning.get("conditioning"))
    positive = walk.texts(positive_link, "positive")
    negative = walk.texts(conditioning.get("negative"), "negative")
    out["prompt"] = "\n".join(positive) or None
    out["negativePrompt"] = "\n".join(negative) or None
    model_link = inputs.get("model", guider_inputs.get("model", sigma_inputs.get("model")))
    out["model"], out["loras"] = walk.model(model_link)
    latent = walk.node(inputs.get("latent_image"))
    if latent:
        out["width"] = walk.scalar(latent[1], "width")
        out["height"] = walk.scalar(latent[1], "height")
    return out


# The UI workflow keeps widget values by position only. These are the positions of the
# core nodes the record needs (None: the "control after generate" widget that follows
# each seed); other nodes contribute their links only.
_WIDGETS: dict[str, tuple[str | None, ...]] = {
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": (
        "add_noise",
        "noise_seed",
        None,
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
    ),
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": (
        "width",
        "height",
        "crop_w",
        "crop_h",
        "target_width",
        "target_height",
        "text_g",
        "text_l",
    ),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "UNETLoader": ("unet_name",),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "RandomNoise": ("noise_seed",),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "CFGGuider": ("cfg",),
    "PrimitiveNode": ("value",),
}
_MUTED, _BYPASSED = 2, 4


def graph_from_workflow(workflow: Any, limit: int) -> dict[str, Any]:
    """Turn a UI workflow into an API-shaped graph (for files that carry no API graph).

    Widget values are placed by ``_WIDGETS`` positions; links become ``[origin, slot]``
    inputs, overriding a widget of the same name. Muted and bypassed nodes are left out.
    """
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return {}
    origins: dict[Any, list[Any]] = {}
    for link in workflow.get("links") or []:
        if isinstance(link, list) and len(link) >= 3:
            origins[link[0]] = [str(link[1]), link[2]]
        elif isinstance(link, dict) and "id" in link:
            origins[link["id"]] = [str(link.get("origin_id")), link.get("origin_slot")]
    graph: dict[str, Any] = {}
    for node in workflow["nodes"][:limit]:
        if not isinstance(node, dict) or node.get("mode") in (_MUTED, _BYPASSED):
            continue
        kind = str(node.get("type"))
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        if isinstance(values, list):
            names = _WIDGETS.get(kind, ())
            inputs.update((n, v) for n, v in zip(names, values, strict=False) if n)
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and isinstance(slot.get("name"), str):
                link = slot.get("link")
                if isinstance(link, int | str) and link in origins:
                    inputs[slot["name"]] = origins[link]
        graph[str(node.get("id"))] = {"class_type": kind, "inputs": inputs}
    return graph
