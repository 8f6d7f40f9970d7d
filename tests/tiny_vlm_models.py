"""Random-init vision-language models of the real architectures (LLaVA 1.5, Qwen2-VL, Qwen2.5-VL,
PaliGemma) with
their real processor classes and a byte-level tokenizer trained here, the family's image tokens added."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import transformers as tf
from tiny_text_models import byte_level_tokenizer

SMALL_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


def _tokenizer(*tokens: str) -> tuple[Any, dict[str, int]]:
    tokenizer = byte_level_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": list(tokens)})
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}


def llava(image_size: int = 56, patch: int = 14, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """LLaVA 1.5: CLIP vision tower (CLS dropped), Llama, CLIP's resize + centre crop."""
    tokenizer, ids = _tokenizer("<image>")
    vision = tf.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
    )
    text = tf.LlamaConfig(vocab_size=len(tokenizer), **SMALL_TEXT)
    config = tf.LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=ids["<image>"], vision_feature_layer=-1
    )
    size = {"shortest_edge": image_size}
    crop = {"height": image_size, "width": image_size}
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(size=size, crop_size=crop),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    return _seeded(seed, lambda: tf.LlavaForConditionalGeneration(config)), processor


def llava_next(seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """LLaVA-NeXT: 56-pixel tiles of 14-pixel patches at the best of three resolutions, the base view
    first, the padding's feature rows cut off and an image-newline token after each row."""
    tokenizer, ids = _tokenizer("<image>")
    vision = tf.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=56,
        patch_size=14,
    )
    text = tf.LlamaConfig(vocab_size=len(tokenizer), **SMALL_TEXT)
    pinpoints = [[56, 112], [112, 56], [112, 112]]
    config = tf.LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=ids["<image>"],
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
    )
    image_processor = tf.LlavaNextImageProcessor(
        size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}, image_grid_pinpoints=pinpoints
    )
    processor = tf.LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    return _seeded(seed, lambda: tf.LlavaNextForConditionalGeneration(config)), processor


def _qwen_text_and_tokens() -> tuple[Any, dict[str, Any]]:
    """Qwen2-VL's and Qwen2.5-VL's tokenizer and the config entries of their language model and tokens."""
    tokenizer, ids = _tokenizer("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>")
    rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}
    text = {"vocab_size": len(tokenizer), "rope_parameters": rope, "bos_token_id": 1, "eos_token_id": 2}
    return tokenizer, {
        "text_config": {**text, **SMALL_TEXT},
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def _qwen_processor(processor_class: type, tokenizer: Any, max_pixels: int) -> Any:
    return processor_class(
        image_processor=tf.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels),
        tokenizer=tokenizer,
        video_processor=tf.Qwen2VLVideoProcessor(),
    )


def qwen2_vl(seed: int = 0, max_pixels: int = 112 * 112) -> tuple[torch.nn.Module, Any]:
    """Qwen2-VL: 14-pixel patches merged 2 x 2, its `smart_resize`, mrope."""
    tokenizer, text_and_tokens = _qwen_text_and_tokens()
    config = tf.Qwen2VLConfig(
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        **text_and_tokens,
    )
    processor = _qwen_processor(tf.Qwen2VLProcessor, tokenizer, max_pixels)
    return _seeded(seed, lambda: tf.Qwen2VLForConditionalGeneration(config)), processor


def qwen2_5_vl(seed: int = 0, max_pixels: int = 112 * 112) -> tuple[torch.nn.Module, Any]:
    """Qwen2.5-VL: as Qwen2-VL, with window attention in the vision tower (windows of 2 x 2 merged
    patches, so a 2 x 4 picture is reordered into two windows inside the tower)."""
    tokenizer, text_and_tokens = _qwen_text_and_tokens()
    config = tf.Qwen2_5_VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        **text_and_tokens,
    )
    processor = _qwen_processor(tf.Qwen2_5_VLProcessor, tokenizer, max_pixels)
    return _seeded(seed, lambda: tf.Qwen2_5_VLForConditionalGeneration(config)), processor


def paligemma(image_size: int = 56, patch: int = 14, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """PaliGemma: SigLIP patches (no CLS), Gemma, a plain resize to a square."""
    tokenizer, ids = _tokenizer("<image>")
    tokens = (image_size // patch) ** 2
    config = tf.PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": patch,
        },
        text_config={"model_type": "gemma", "vocab_size": len(tokenizer), "head_dim": 8, **SMALL_TEXT},
        image_token_id=ids["<image>"],
        projection_dim=32,
    )
    image_processor = tf.SiglipImageProcessor(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = tokens
    processor = tf.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return _seeded(seed, lambda: tf.PaliGemmaForConditionalGeneration(config)), processor


def idefics3(smol: bool = False, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """Idefics3 (or SmolVLM): 56-pixel tiles of 14-pixel patches, pixel shuffle 2 (4 tokens a tile),
    a picture resized to at most 112 a side and split into tiles, plus the global view."""
    tokenizer, ids = _tokenizer("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>")
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    vision |= {"image_size": 56, "patch_size": 14}
    text = {"model_type": "llama", "vocab_size": len(tokenizer), **SMALL_TEXT}
    common = {
        "vision_config": vision,
        "text_config": text,
        "scale_factor": 2,
        "image_token_id": ids["<image>"],
    }
    sizes = {"size": {"longest_edge": 112}, "max_image_size": {"longest_edge": 56}}
    if smol:  # SmolVLM's own processor (it needs num2words, for its video prompts)
        config = tf.SmolVLMConfig(**common)
        processor = tf.SmolVLMProcessor(
            image_processor=tf.SmolVLMImageProcessor(**sizes),
            tokenizer=tokenizer,
            video_processor=tf.SmolVLMVideoProcessor(),
            image_seq_len=4,
        )
        return _seeded(seed, lambda: tf.SmolVLMForConditionalGeneration(config)), processor
    config = tf.Idefics3Config(**common)
    processor = tf.Idefics3Processor(
        image_processor=tf.Idefics3ImageProcessor(**sizes), tokenizer=tokenizer, image_seq_len=4
    )
    return _seeded(seed, lambda: tf.Idefics3ForConditionalGeneration(config)), processor


def smolvlm(seed: int = 0) -> tuple[torch.nn.Module, Any]:
    return idefics3(smol=True, seed=seed)


FAMILY_BUILDERS = {
    "llava": llava,
    "llava_next": llava_next,
    "qwen2_vl": qwen2_vl,
    "qwen2_5_vl": qwen2_5_vl,
    "paligemma": paligemma,
    "idefics3": idefics3,
    "smolvlm": smolvlm,
}
PROMPTS = {
    "llava": "USER: <image> What is in the picture? ASSISTANT:",
    "llava_next": "USER: <image> What is in the picture? ASSISTANT:",
    "qwen2_vl": "The cat <|vision_start|><|image_pad|><|vision_end|> sat on the mat?",
    "qwen2_5_vl": "The cat <|vision_start|><|image_pad|><|vision_end|> sat on the mat?",
    "paligemma": "<image>caption en",
    "idefics3": "User:<image>What is in the picture?<end_of_utterance>\nAssistant:",
    "smolvlm": "User:<image>What is in the picture?<end_of_utterance>\nAssistant:",
}


def _seeded(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build().eval()
