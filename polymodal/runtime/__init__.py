"""The model-call path: where a prepared model call is cached, loaded, batched, hosted and bounded.

Everything between a tool's prepared inputs and its model's outputs lives here, below the tools
(the tools build on it; it builds on :mod:`polymodal.media` and the core only):

- :mod:`~polymodal.runtime.cache`: one cache of loaded models per process (device, dtype, eviction);
- :mod:`~polymodal.runtime.loading`: a model loaded, or one line saying what is missing;
- :mod:`~polymodal.runtime.batching`: concurrent calls of one model share forward passes;
- :mod:`~polymodal.runtime.hosts`: where the model runs (in-process, worker processes, Ray actors);
- :mod:`~polymodal.runtime.turns`: which agent turn a call belongs to, and how many are in flight;
- :mod:`~polymodal.runtime.budget`: per-request caps on generated media.

An internal package: import the public names from :mod:`polymodal` and :mod:`polymodal.tools`.
"""

__all__: list[str] = []  # internal package (docs/api.md): import public names from polymodal or polymodal.tools
