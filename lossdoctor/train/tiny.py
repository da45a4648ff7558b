"""`--model tiny`: a Qwen2-architecture model with random weights and a BPE tokenizer trained on the data on the
spot. Why: the example runs (overfitting / healthy) and the tests must train for real, offline, in seconds on
2 CPU cores, without any download. Everything is seeded, so the same data and seed give the same curves.
"""

from __future__ import annotations

from typing import Any

PAD, EOS, IM_START, IM_END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, EOS, IM_START, IM_END]

#: ChatML, the format of Qwen chat models, so a tiny run looks like a real Qwen fine-tune
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: model shape: small enough for a CPU step in milliseconds, big enough to memorise a few dozen rows
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS = 64, 128, 2, 4, 2
#: larger than Qwen's 0.02: the embeddings (tied to the output head) stay frozen under LoRA, and with tiny
#: random rows the logits could never become confident, so the loss would stall near ln(vocab)
INIT_RANGE = 0.2


def build_tokenizer(texts: list[str], vocab_size: int = 512) -> Any:
    """Byte-level BPE trained on ``texts``, wrapped as a PreTrainedTokenizerFast with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, additional_special_tokens=[IM_START, IM_END]
    )
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.model_max_length = 4096
    return wrapped


def build_model(tokenizer: Any, max_positions: int, seed: int) -> Any:
    """A randomly initialised Qwen2ForCausalLM sized to the tokenizer (seeded)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=max(64, max_positions),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        initializer_range=INIT_RANGE,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    return model
