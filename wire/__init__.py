"""The OpenAI wire format, in one place: endpoint names, SSE framing, stream reassembly, usage, error shapes;
and the strict base every configuration model is built on (``config_model``), the one format all layers read.

The bottom layer: every package may import it, and it imports none of ours.
"""
