"""A model simulated in-process (``type: simulated``): ``text`` decides what it says, ``shapes`` puts that in
the OpenAI wire format, ``backend`` paces and serves it."""
