"""Random-init text models of the real architectures (GPT-2, Llama, T5, BART) with a byte-level BPE
tokenizer trained here, saved with `save_pretrained` and loaded back from the directory."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf
from tokenizers import ByteLevelBPETokenizer

CORPUS = [
    "Attention is all you need.",
    "The cat sat on the mat, and the dog sat on the log.",
    'Tokens like <b>, & and "quotes" must show as text.',
    "Transformers attend to every earlier token when they generate.",
] * 20
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def byte_level_tokenizer() -> tf.PreTrainedTokenizerFast:
    """A GPT-2 style byte-level BPE tokenizer (space marked as "Ġ" in its pieces)."""
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=SPECIALS)
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=trainer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _models(vocab: int) -> dict[str, object]:
    small = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64}
    seq2seq = {
        "vocab_size": vocab,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
    }
    return {
        "gpt2": lambda: tf.GPT2LMHeadModel(
            tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=3, n_head=4, n_positions=64)
        ),
        "llama": lambda: tf.LlamaForCausalLM(
            tf.LlamaConfig(vocab_size=vocab, num_key_value_heads=2, max_position_embeddings=64, **small)
        ),
        "t5": lambda: tf.T5ForConditionalGeneration(
            tf.T5Config(
                d_model=32, d_kv=8, d_ff=64, num_layers=3, num_decoder_layers=2, num_heads=4, **seq2seq
            )
        ),
        "bart": lambda: tf.BartForConditionalGeneration(
            tf.BartConfig(
                d_model=32,
                encoder_layers=3,
                decoder_layers=2,
                encoder_attention_heads=4,
                decoder_attention_heads=2,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                max_position_embeddings=64,
                **seq2seq,
            )
        ),
    }


TEXT_ARCHITECTURES = ("gpt2", "llama", "t5", "bart")


def save_tiny_text_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """Every tiny text architecture with the byte-level tokenizer, each in its own directory."""
    tokenizer = byte_level_tokenizer()
    folders = {}
    for name, build in _models(len(tokenizer)).items():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build()
        folder = root / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


def save_text_model_with_token(folder: Path, token: str, target: Path) -> Path:
    """The model in `folder` with `token` added to its vocabulary as one piece, saved to `target`."""
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens([token])
    model = tf.AutoModelForCausalLM.from_pretrained(folder)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
