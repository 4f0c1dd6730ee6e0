"""The OpenAI wire format, in one place: endpoint names, SSE framing, stream reassembly, usage, error shapes.

The bottom layer: every package may import it, and it imports none of ours.
"""
