"""vLLM-specific serving: the admin calls (LoRA load/unload, discovery), the fleet view, its /metrics parser and
the background monitor that scrapes /health and /metrics."""
