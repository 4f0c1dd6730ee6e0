"""Where pointsman's cost differs from litellm's calculator, and why (see ``test_price_oracle``).

Each entry matches table keys (``models``, fnmatch globs) and usage shapes (``shapes``: ``plain``, ``cached``,
``cache_write``, ``reasoning``, ``above_<N>``, each optionally ``@<tier>``). ``reference`` is the provider's
published price the entry is judged by; ``why`` says which side follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Allowed:
    models: tuple[str, ...]
    shapes: tuple[str, ...]
    reference: str
    why: str

    def covers(self, model: str, shape: str) -> bool:
        return any(fnmatchcase(model, m) for m in self.models) and any(
            fnmatchcase(shape, s) for s in self.shapes
        )


ALLOWED = (
    Allowed(
        models=("*",),
        shapes=("cached@batch",),
        reference=(
            "Anthropic, docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing: the batch discount "
            "(50%) stacks with prompt-caching prices, so a batched cache read costs half the cache-read price; "
            "OpenAI, platform.openai.com/docs/pricing (Batch): cached input at half the standard cached-input "
            "price (gpt-5: $0.0625 vs $0.125 per 1M); Google and AWS: batch is 50% of on-demand for every token."
        ),
        why=(
            "pointsman halves the cache-read price in batch (a model's own *_batches price wins); litellm's "
            "batch calculator charges the standard cache-read price."
        ),
    ),
    Allowed(
        models=("fireworks_ai/*",),
        shapes=("*@priority",),
        reference=(
            "Fireworks AI, fireworks.ai/pricing: priority-tier serverless prices, as the table carries them "
            "(input_cost_per_token_priority, output_cost_per_token_priority, cache_read_..._priority)."
        ),
        why=(
            "pointsman charges the priority prices the response's service_tier selects; litellm's Fireworks "
            "calculator does not take service_tier and charges standard prices."
        ),
    ),
    Allowed(
        models=("deepseek/*", "deepseek-*"),
        shapes=("cache_write",),
        reference=(
            "DeepSeek, api-docs.deepseek.com/quick_start/pricing: input tokens are billed as cache hit or cache "
            "miss; there is no cache-write price, a token that is not a hit costs the cache-miss input price."
        ),
        why=(
            "pointsman bills cache-written tokens at the input (cache-miss) price, as DeepSeek does; litellm's "
            "DeepSeek calculator drops them (DeepSeek itself never reports cache writes)."
        ),
    ),
    Allowed(
        models=(
            "deepseek/deepseek-flash*",
            "deepseek-flash*",
            "deepseek/deepseek-v4*",
            "deepseek-v4*",
            "tencent/*",
            "*off-peak*",
        ),
        shapes=("*",),
        reference=(
            "DeepSeek, api-docs.deepseek.com/quick_start/pricing: off-peak discount windows (UTC), carried in the "
            "table as off_peak_pricing."
        ),
        why=(
            "time-of-day prices are not applied: pointsman charges the standard price at all hours, litellm the "
            "off-peak price while a window is open (this entry differs only when the test runs inside one). "
            "pointsman overstates these models' cost during off-peak windows: listed as not done in "
            "docs/accounting.md."
        ),
    ),
    Allowed(
        models=("gemini-exp-*", "gemini/gemini-exp-*"),
        shapes=("*",),
        reference=(
            "Google, ai.google.dev/gemini-api/docs/pricing: experimental Gemini models are free of charge."
        ),
        why=(
            "litellm special-cases experimental Gemini models to $0, following Google; the table lists a price "
            "for gemini-exp-1206, which pointsman charges (set accounting.pricing to 0 to follow Google)."
        ),
    ),
)
