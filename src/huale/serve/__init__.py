"""``huale serve``: a labeling project as Label Studio's ML backend.

- :mod:`huale.serve.backend`: what Label Studio asks (setup, predict, events, health), no HTTP;
- :mod:`huale.serve.http`: the WSGI application mapping the ML backend routes onto a backend;
- :mod:`huale.serve.server`: waitress, the production WSGI server (the ``huale[serve]`` extra);
- :mod:`huale.serve.images`: where a task's image may be read from (the pool, the Label Studio
  host) and nowhere else;
- :mod:`huale.serve.ranking`: the prediction score that sorts the most informative task first;
- :mod:`huale.labeling.regions` (Label Studio regions, shared with the exports), :mod:`.models`, :mod:`.training`, :mod:`.project`: helpers.

Nothing here is imported by huale's other packages, and waitress only when a server starts.
"""
