#!/usr/bin/env python3
"""Build a tiny random-weight Llama checkpoint that `vllm serve` accepts, offline.

    python scripts/make_tiny_model.py MODEL_DIR [--lora-dir DIR ...] [--vocab 2048] [--seed 0]

Runs in the vLLM venv made by scripts/vllm_cpu.sh (needs torch, transformers, tokenizers, safetensors;
peft for adapters). Nothing is downloaded: the byte-level BPE tokenizer is trained on this Python's own
standard-library sources, the weights are seeded random numbers, and every ``--lora-dir`` gets a rank-8
LoRA adapter (q/k/v/o projections, random non-zero A and B so it really changes outputs) with its own seed.

Shape constraints (vLLM on CPU):
  * the CPU attention backend needs head_dim >= 32 -> hidden 128 with 4 heads;
  * config.vocab_size == len(tokenizer), so every sampled id decodes;
  * a ChatML chat template, so /v1/chat/completions works;
  * random weights seldom produce EOS, so generations usually run to max_tokens
    (send ``ignore_eos: true`` or temperature 0 to make that exact).
"""

from __future__ import annotations

import argparse
import json
import sysconfig
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

# ChatML; message content may be a string or a list of {"type": "text", "text": ...} parts
CHATML_TEMPLATE = """\
{%- for m in messages -%}
<|im_start|>{{ m['role'] }}
{% if m['content'] is string %}{{ m['content'] }}{% else %}\
{% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}\
{% endif %}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}
"""


def training_corpus() -> list[str]:
    """Text that is on every machine: the interpreter's standard library sources."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(p) for p in stdlib.glob("*.py"))
    if not files:
        raise SystemExit(f"no *.py files under {stdlib} to train the tokenizer on")
    return files


def make_tokenizer(out: Path, vocab: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train(
        training_corpus(),
        trainers.BpeTrainer(
            vocab_size=vocab,
            min_frequency=2,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        model_max_length=512,
    )
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(str(out))
    return tok


def make_model(out: Path, tok: Any, seed: int) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,  # head_dim 32
        num_key_value_heads=2,  # grouped-query attention, as in real models
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).float()
    model.save_pretrained(str(out), safe_serialization=True)
    GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    ).save_pretrained(str(out))
    return model


def make_lora(lora_dir: Path, model_dir: Path, model: Any, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
            init_lora_weights=False,  # random B too: an identity adapter would prove nothing
        ),
    )
    peft_model.save_pretrained(str(lora_dir), safe_serialization=True)
    peft_model.unload()  # give the base model back without the adapter layers
    # point the adapter at the local base model instead of a hub id
    cfg_path = lora_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(model_dir.resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--lora-dir", type=Path, action="append", default=[], help="repeat for more adapters")
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    args.model_dir.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(args.model_dir, args.vocab)
    model = make_model(args.model_dir, tok, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    for i, lora_dir in enumerate(args.lora_dir, start=1):
        lora_dir.mkdir(parents=True, exist_ok=True)
        make_lora(lora_dir, args.model_dir, model, args.seed + i)

    ids = tok.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    print(f"tiny model: {n_params} params, vocab {len(tok)}, chat prompt 'hello' = {len(ids)} tokens")
    print(f"  model -> {args.model_dir}")
    for d in args.lora_dir:
        print(f"  lora  -> {d}")


if __name__ == "__main__":
    main()
